/* Bounds-checked packet parsing, shared by every hook.
 *
 * A cursor walks the packet from `pos` to `end` (data_end). Every helper checks
 * that the bytes it is about to read lie before `end`, then advances the
 * cursor; a helper that returns -1 has read nothing. The verifier rejects any
 * read it cannot prove in bounds, so these checks are also what lets the
 * programs load at all.
 */
#ifndef HERCULES_PARSE_H
#define HERCULES_PARSE_H

#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/icmpv6.h>

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* IPv6 extension headers the stack must see (hop-by-hop options such as the
 * router alert, routing headers, fragments, destination options). */
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60

/* ICMPv6 neighbour discovery: router solicitation to redirect. */
#define ND_FIRST_TYPE 133
#define ND_LAST_TYPE 137

struct cursor {
    void *pos;
    void *end;
};

/* What the hooks need to know about one IP packet. Addresses and ports are in
 * network byte order, as they are in the packet. */
struct packet {
    void *l3;          /* the IP header */
    __u32 l3_len;      /* IPv4 total length, or IPv6 payload length + 40 */
    __u32 hdr_len;     /* IP header + L4 header bytes: one wire segment's headers */
    __u8 family;       /* 4 or 6 */
    __u8 proto;        /* L4 protocol (IPv6: the first next header) */
    __u8 ttl;          /* TTL or hop limit */
    __u8 tcp_flags;
    __u8 to_stack;     /* fragment, options, extension headers, ND, multicast */
    __u8 saddr[16];    /* IPv4 in the first 4 bytes */
    __u8 daddr[16];
    __u16 sport;       /* ICMP: 0 */
    __u16 dport;       /* ICMP: type << 8 | code, as NetFlow carries it */
};

static __always_inline int parse_ethhdr(struct cursor *c, __u16 *proto)
{
    struct ethhdr *eth = c->pos;

    if ((void *)(eth + 1) > c->end)
        return -1;
    *proto = eth->h_proto;
    c->pos = eth + 1;
    return 0;
}

/* The L4 ports (or ICMP type and code) and TCP flags. A packet cut short
 * inside its L4 header goes to the stack, which drops it. */
static __always_inline void parse_l4(struct cursor *c, struct packet *p)
{
    if (p->proto == IPPROTO_TCP) {
        struct tcphdr *tcp = c->pos;

        if ((void *)(tcp + 1) > c->end) {
            p->to_stack = 1;
            return;
        }
        p->sport = tcp->source;
        p->dport = tcp->dest;
        p->tcp_flags = ((__u8 *)tcp)[13];
        p->hdr_len += tcp->doff * 4;
    } else if (p->proto == IPPROTO_UDP) {
        struct udphdr *udp = c->pos;

        if ((void *)(udp + 1) > c->end) {
            p->to_stack = 1;
            return;
        }
        p->sport = udp->source;
        p->dport = udp->dest;
        p->hdr_len += sizeof(*udp);
    } else if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
        __u8 *icmp = c->pos;

        if ((void *)(icmp + 2) > c->end) {
            p->to_stack = 1;
            return;
        }
        p->dport = bpf_htons((__u16)icmp[0] << 8 | icmp[1]);
        p->hdr_len += 8;
        if (p->proto == IPPROTO_ICMPV6 && icmp[0] >= ND_FIRST_TYPE && icmp[0] <= ND_LAST_TYPE)
            p->to_stack = 1;
    }
}

/* IPv4 with its options: the header length comes from IHL, checked twice:
 * at least 20 bytes, and all of it before the end. */
static __always_inline int parse_ipv4(struct cursor *c, struct packet *p)
{
    struct iphdr *ip = c->pos;
    __u32 ihl;

    if ((void *)(ip + 1) > c->end)
        return -1;
    ihl = ip->ihl * 4;
    if (ip->version != 4 || ihl < sizeof(*ip))
        return -1;
    if (c->pos + ihl > c->end)
        return -1;
    p->l3 = ip;
    p->family = 4;
    p->proto = ip->protocol;
    p->ttl = ip->ttl;
    p->l3_len = bpf_ntohs(ip->tot_len);
    p->hdr_len = ihl;
    __builtin_memcpy(p->saddr, &ip->saddr, 4);
    __builtin_memcpy(p->daddr, &ip->daddr, 4);
    /* Fragments and options go to the stack: it reassembles, and it updates
     * record-route and timestamp options. Multicast and broadcast too. */
    if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
        p->to_stack = 1;
    if (ihl > sizeof(*ip))
        p->to_stack = 1;
    if ((p->daddr[0] & 0xf0) == 0xe0 || ip->daddr == 0xffffffff)
        p->to_stack = 1;
    c->pos += ihl;
    if (!(ip->frag_off & bpf_htons(IP_OFFSET)))
        parse_l4(c, p);
    return 0;
}

static __always_inline int parse_ipv6(struct cursor *c, struct packet *p)
{
    struct ipv6hdr *ip6 = c->pos;
    __u8 next;

    if ((void *)(ip6 + 1) > c->end)
        return -1;
    if (ip6->version != 6)
        return -1;
    p->l3 = ip6;
    p->family = 6;
    next = ip6->nexthdr;
    p->proto = next;
    p->ttl = ip6->hop_limit;
    p->l3_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
    p->hdr_len = sizeof(*ip6);
    __builtin_memcpy(p->saddr, &ip6->saddr, 16);
    __builtin_memcpy(p->daddr, &ip6->daddr, 16);
    if (next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_FRAGMENT ||
        next == NEXTHDR_DEST)
        p->to_stack = 1;
    /* Multicast (ff00::/8) and link-local (fe80::/10) stay on the link. */
    if (p->daddr[0] == 0xff || (p->daddr[0] == 0xfe && (p->daddr[1] & 0xc0) == 0x80))
        p->to_stack = 1;
    c->pos = ip6 + 1;
    parse_l4(c, p);
    return 0;
}

/* The IP packet that starts at the cursor, by its L3 protocol (network order). */
static __always_inline int parse_ip(struct cursor *c, __u16 proto, struct packet *p)
{
    if (proto == bpf_htons(ETH_P_IP))
        return parse_ipv4(c, p);
    if (proto == bpf_htons(ETH_P_IPV6))
        return parse_ipv6(c, p);
    return -1;
}

#endif
