/* The XDP fast path, for Ethernet devices (workload veths): it forwards
 * between them before an skb exists.
 *
 * The LPM trie says whether the destination is the overlay's and which
 * device it leaves by; bpf_fib_lookup (the kernel's own routing table and
 * neighbour cache) gives the MAC addresses, and must agree on the device.
 * XDP cannot hand a frame to a layer-3 device (WireGuard over TUN): such
 * packets go to the stack. WireGuard devices take the TC program instead.
 *
 * Verdicts: XDP_REDIRECT (forwarded), XDP_PASS (to the stack), XDP_ABORTED
 * (dropped: a helper refused its arguments).
 */
#include <uapi/linux/bpf.h>

#include "hercules_config.h"
#include "parse.h"
#include "account.h"
#include "route.h"

#define AF_INET 2
#define AF_INET6 10

static __always_inline int verdict(int action)
{
    if (action == XDP_REDIRECT)
        count(COUNT_REDIRECTED);
    else if (action == XDP_PASS)
        count(COUNT_PASSED);
    else
        count(COUNT_DROPPED);
    return action;
}

#if FASTPATH_XDP
static __always_inline int fib_lookup(struct xdp_md *ctx, const struct packet *p,
                                      struct bpf_fib_lookup *fib)
{
    fib->ifindex = ctx->ingress_ifindex;
    fib->l4_protocol = p->proto;
    fib->sport = p->sport;
    fib->dport = p->dport;
    fib->tot_len = p->l3_len;
    if (p->family == 4) {
        struct iphdr *ip = p->l3;

        fib->family = AF_INET;
        fib->tos = ip->tos;
        __builtin_memcpy(&fib->ipv4_src, p->saddr, 4);
        __builtin_memcpy(&fib->ipv4_dst, p->daddr, 4);
    } else {
        fib->family = AF_INET6;
        __builtin_memcpy(fib->ipv6_src, p->saddr, 16);
        __builtin_memcpy(fib->ipv6_dst, p->daddr, 16);
    }
    return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

static __always_inline int forward(struct xdp_md *ctx, struct ethhdr *eth, struct packet *p)
{
    struct bpf_fib_lookup fib = {};
    struct route_value *route;

    if (p->to_stack)
        return XDP_PASS;
    route = route_lookup(p);
    if (!route || route->flags & (ROUTE_LOCAL | ROUTE_L3_DEVICE))
        return XDP_PASS;
    if (p->ttl <= 1)  /* the stack sends ICMP time exceeded */
        return XDP_PASS;
    switch (fib_lookup(ctx, p, &fib)) {
    case BPF_FIB_LKUP_RET_SUCCESS:
        break;
    case BPF_FIB_LKUP_RET_NO_NEIGH:     /* the stack resolves the neighbour */
    case BPF_FIB_LKUP_RET_FRAG_NEEDED:  /* the stack fragments or sends "too big" */
    case BPF_FIB_LKUP_RET_BLACKHOLE:    /* blackhole, unreachable, prohibit: */
    case BPF_FIB_LKUP_RET_UNREACHABLE:  /* the stack drops or answers with ICMP */
    case BPF_FIB_LKUP_RET_PROHIBIT:
    case BPF_FIB_LKUP_RET_NOT_FWDED:    /* local, or not a unicast route */
    case BPF_FIB_LKUP_RET_FWD_DISABLED: /* forwarding is off on the ingress device */
    case BPF_FIB_LKUP_RET_UNSUPP_LWT:
    default:
        return XDP_PASS;
    }
    /* The kernel's table and the spec disagree: the kernel's is what the
     * stack would do. */
    if (fib.ifindex != route->ifindex)
        return XDP_PASS;
    decrement_ttl(p);
    __builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
    __builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
    return bpf_redirect(fib.ifindex, 0);
}
#endif

int fastpath_xdp(struct xdp_md *ctx)
{
    struct cursor c = {
        .pos = (void *)(long)ctx->data,
        .end = (void *)(long)ctx->data_end,
    };
    struct ethhdr *eth = c.pos;
    struct packet p = {};
    __u16 proto;

    if (parse_ethhdr(&c, &proto) < 0)
        return verdict(XDP_PASS);
    if (parse_ip(&c, proto, &p) < 0)  /* not IP (ARP...), or truncated */
        return verdict(XDP_PASS);
    if (p.l3_len > ctx->data_end - ctx->data - ETH_HLEN)  /* cut short: the stack drops it */
        p.to_stack = 1;
    /* XDP sees wire frames: one segment, its IP length (not the frame's,
     * which may carry Ethernet padding). */
    account(&p, ctx->ingress_ifindex, DIRECTION_INGRESS, 1, p.l3_len);
#if FASTPATH_XDP
    return verdict(forward(ctx, eth, &p));
#endif
    return verdict(XDP_PASS);
}
