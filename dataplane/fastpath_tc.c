/* The TC fast path: a cls_bpf classifier in direct-action mode on the ingress
 * of every overlay device of a network namespace.
 *
 * Four entry points share one body: fastpath_tc_eth for Ethernet devices
 * (workload veths), fastpath_tc_l3 for layer-3 devices (WireGuard over TUN,
 * whose packets start at the IP header), account_tc_l3, which only
 * accounts: for gateway tunnels, whose traffic the stack's nftables rules
 * must see, and fastpath_tc_after_xdp, which only forwards: on a veth behind
 * the XDP program (`fastpath xdp`), which accounted every packet already and
 * passes what it cannot redirect, a layer-3 egress above all (XDP cannot hand
 * a frame to WireGuard over TUN; TC can). TC is the hook that works on every
 * device, and the one that sees GSO super-packets whole (gso_segs wire
 * segments).
 *
 * Verdicts: TC_ACT_REDIRECT (forwarded), TC_ACT_OK (to the stack),
 * TC_ACT_SHOT (dropped, only when a packet was already half rewritten).
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>

#include "hercules_config.h"
#include "parse.h"
#include "account.h"
#include "route.h"

/* bcc 0.26 declares this helper with 3 arguments; the kernel's takes 4, and
 * the verifier refuses the call without the 4th (R4 !read_ok). */
static long (*redirect_neigh)(__u32 ifindex, void *params, int plen, __u64 flags) =
    (void *)BPF_FUNC_redirect_neigh;

/* The one exit: every verdict is counted by reason. */
static __always_inline int verdict(int action)
{
    if (action == TC_ACT_REDIRECT)
        count(COUNT_REDIRECTED);
    else if (action == TC_ACT_OK)
        count(COUNT_PASSED);
    else
        count(COUNT_DROPPED);
    return action;
}

#if FASTPATH_TC
/* After bpf_skb_change_head every packet pointer is stale: find the IP header
 * again, `offset` bytes into the packet. */
static __always_inline int reload_l3(struct __sk_buff *skb, struct packet *p, __u32 offset)
{
    void *l3 = (void *)(long)skb->data + offset;
    void *end = (void *)(long)skb->data_end;

    if (p->family == 4 && l3 + sizeof(struct iphdr) > end)
        return -1;
    if (p->family == 6 && l3 + sizeof(struct ipv6hdr) > end)
        return -1;
    p->l3 = l3;
    return 0;
}

static __always_inline int forward(struct __sk_buff *skb, struct packet *p, __u32 l2_len)
{
    struct route_value *route;
    __u32 ifindex, flags;
    __u32 mtu_len = p->l3_len;

    if (p->to_stack)
        return TC_ACT_OK;
    route = route_lookup(p);
    if (!route || route->flags & ROUTE_LOCAL)
        return TC_ACT_OK;
    if (p->ttl <= 1)  /* the stack sends ICMP time exceeded */
        return TC_ACT_OK;
    ifindex = route->ifindex;
    flags = route->flags;
    /* Too big for the egress: the stack fragments or sends "too big". A GSO
     * packet passes: it is cut into segments that fit on transmit. */
    if (bpf_check_mtu(skb, ifindex, &mtu_len, 0, 0) != BPF_MTU_CHK_RET_SUCCESS)
        return TC_ACT_OK;
    if (flags & ROUTE_L3_DEVICE) {
        decrement_ttl(p);
        return bpf_redirect(ifindex, 0);  /* the kernel strips any L2 header */
    }
    if (!l2_len) {
        /* From an L3 device to an Ethernet one: the neighbour code needs room
         * for an L2 header, which it fills. */
        if (bpf_skb_change_head(skb, ETH_HLEN, 0))
            return TC_ACT_OK;
        if (reload_l3(skb, p, ETH_HLEN) < 0)
            return TC_ACT_SHOT;
    }
    decrement_ttl(p);
    return redirect_neigh(ifindex, NULL, 0, 0);
}
#endif

/* l2_len: ETH_HLEN on Ethernet devices, 0 on L3 devices; forwarding: 0 to
 * account only; accounting: 0 where XDP in front of it accounted the packet.
 * All are constants, so each entry point is its own code. */
static __always_inline int fastpath(struct __sk_buff *skb, __u32 l2_len, int forwarding,
                                    int accounting)
{
    struct cursor c = {
        .pos = (void *)(long)skb->data,
        .end = (void *)(long)skb->data_end,
    };
    struct packet p = {};
    __u16 proto = skb->protocol;
    __u64 segments = skb->gso_segs ? skb->gso_segs : 1;
    __u64 bytes;

    if (l2_len && parse_ethhdr(&c, &proto) < 0)
        return verdict(TC_ACT_OK);
    if (parse_ip(&c, proto, &p) < 0)  /* not IP (ARP...), or truncated */
        return verdict(TC_ACT_OK);
    if (p.l3_len > skb->len - l2_len)  /* cut short: the stack drops it */
        p.to_stack = 1;
    /* One segment's L3 bytes are its IP length; a GSO packet's segments each
     * carry their own copy of the headers. */
    bytes = segments > 1 ? skb->len - l2_len + (segments - 1) * p.hdr_len : p.l3_len;
    if (accounting)
        account(&p, skb->ifindex, DIRECTION_INGRESS, segments, bytes);
#if FASTPATH_TC
    if (forwarding)
        return verdict(forward(skb, &p, l2_len));
#endif
    return verdict(TC_ACT_OK);
}

int fastpath_tc_eth(struct __sk_buff *skb)
{
    return fastpath(skb, ETH_HLEN, 1, 1);
}

int fastpath_tc_l3(struct __sk_buff *skb)
{
    return fastpath(skb, 0, 1, 1);
}

int account_tc_l3(struct __sk_buff *skb)
{
    return fastpath(skb, 0, 0, 1);
}

int fastpath_tc_after_xdp(struct __sk_buff *skb)
{
    return fastpath(skb, ETH_HLEN, 1, 0);
}
