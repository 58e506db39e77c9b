/* The forwarding decision shared by every hook: longest-prefix match on the
 * destination, and the TTL / hop limit decrement.
 *
 * routes4 and routes6 are LPM tries filled by the loader from the build's
 * maps.json: the overlay prefixes of one network namespace, each to the
 * ifindex of its egress interface. A ROUTE_LOCAL entry (the node's own
 * addresses) sends the packet to the stack; no entry at all does the same.
 */
#ifndef HERCULES_ROUTE_H
#define HERCULES_ROUTE_H

#include "parse.h"

#define ROUTE_LOCAL 1      /* delivered here: the stack takes it */
#define ROUTE_L3_DEVICE 2  /* the egress has no L2 header (WireGuard over TUN) */

struct route4_key {
    __u32 prefixlen;
    __u8 addr[4];
};

struct route6_key {
    __u32 prefixlen;
    __u8 addr[16];
};

struct route_value {
    __u32 ifindex;
    __u32 flags;
};

BPF_LPM_TRIE(routes4, struct route4_key, struct route_value, ROUTE_MAP_ENTRIES);
BPF_LPM_TRIE(routes6, struct route6_key, struct route_value, ROUTE_MAP_ENTRIES);

static __always_inline struct route_value *route_lookup(const struct packet *p)
{
    if (p->family == 4) {
        struct route4_key key = {.prefixlen = 32};

        __builtin_memcpy(key.addr, p->daddr, 4);
        return routes4.lookup(&key);
    }
    struct route6_key key6 = {.prefixlen = 128};

    __builtin_memcpy(key6.addr, p->daddr, 16);
    return routes6.lookup(&key6);
}

/* The kernel's ip_decrease_ttl: TTL is the high byte of its 16-bit header
 * word, so the checksum (RFC 1624) moves by 0x0100, with the end-around carry. */
static __always_inline void decrement_ttl(struct packet *p)
{
    if (p->family == 4) {
        struct iphdr *ip = p->l3;
        __u32 check = ip->check;

        check += bpf_htons(0x0100);
        ip->check = (__u16)(check + (check >= 0xffff));
        ip->ttl -= 1;
    } else {
        struct ipv6hdr *ip6 = p->l3;

        ip6->hop_limit -= 1;
    }
}

#endif
