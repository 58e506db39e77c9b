/* Per-flow accounting and the per-reason counters.
 *
 * flows: a per-CPU LRU hash, FLOW_MAP_ENTRIES flows, keyed by 5-tuple +
 * ifindex + direction. Each CPU has its own value for a flow; the reader sums
 * packets and bytes, ORs the TCP flags, and takes the earliest first_seen and
 * the latest last_seen (a CPU that never saw the flow has zeros).
 *
 * counters: a per-CPU array indexed by `enum counter`. What eviction the kernel
 * lets us see: an LRU map evicts silently when an insert finds it full, with
 * no callback and no per-map eviction count. The programs count every flow
 * they insert (COUNT_FLOWS_CREATED) and every insert the map refused
 * (COUNT_FLOWS_FAILED); evictions = created - live entries - entries the
 * exporter deleted, which only the reader can work out. The exporter counts
 * what it deletes in COUNT_FLOWS_DELETED (on CPU 0's slot), which no
 * program touches, so every reader can work it out.
 */
#ifndef HERCULES_ACCOUNT_H
#define HERCULES_ACCOUNT_H

#include "parse.h"

enum direction {
    DIRECTION_INGRESS = 0,
    DIRECTION_EGRESS = 1,
};

enum counter {
    COUNT_REDIRECTED = 0,
    COUNT_PASSED = 1,
    COUNT_DROPPED = 2,
    COUNT_FLOWS_CREATED = 3,
    COUNT_FLOWS_FAILED = 4,
    COUNT_FLOWS_DELETED = 5,  /* written by the exporter (hercc.state.flow_maps) only */
    COUNTER_COUNT = 6,
};

struct flow_key {
    __u8 saddr[16];    /* IPv4 in the first 4 bytes, the rest zero */
    __u8 daddr[16];
    __u16 sport;       /* host byte order; ICMP: 0 */
    __u16 dport;       /* host byte order; ICMP: type << 8 | code */
    __u32 ifindex;
    __u8 proto;
    __u8 family;       /* 4 or 6 */
    __u8 direction;
    __u8 pad;
};

struct flow_value {
    __u64 packets;     /* wire segments */
    __u64 bytes;       /* L3 bytes of those segments */
    __u64 first_seen_ns;   /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
    __u64 last_seen_ns;
    __u8 tcp_flags;    /* OR of every segment's flags */
    __u8 pad[7];
};

BPF_PERCPU_ARRAY(counters, __u64, COUNTER_COUNT);

static __always_inline void count(__u32 reason)
{
    __u64 *value = counters.lookup(&reason);

    if (value)
        *value += 1;
}

#if ACCOUNTING
BPF_TABLE("lru_percpu_hash", struct flow_key, struct flow_value, flows, FLOW_MAP_ENTRIES);

static __always_inline void add_segments(struct flow_value *value, const struct packet *p,
                                         __u64 segments, __u64 bytes, __u64 now)
{
    value->packets += segments;
    value->bytes += bytes;
    value->last_seen_ns = now;
    value->tcp_flags |= p->tcp_flags;
    if (!value->first_seen_ns)  /* the flow's first packet on this CPU */
        value->first_seen_ns = now;
}

/* `segments` wire segments of packet `p` seen on `ifindex`; `bytes` their L3 bytes. */
static __always_inline void account(const struct packet *p, __u32 ifindex, __u8 direction,
                                    __u64 segments, __u64 bytes)
{
    struct flow_key key = {};
    struct flow_value *value;
    __u64 now = bpf_ktime_get_ns();

    __builtin_memcpy(key.saddr, p->saddr, 16);
    __builtin_memcpy(key.daddr, p->daddr, 16);
    key.sport = bpf_ntohs(p->sport);
    key.dport = bpf_ntohs(p->dport);
    key.ifindex = ifindex;
    key.proto = p->proto;
    key.family = p->family;
    key.direction = direction;

    value = flows.lookup(&key);
    if (value) {
        add_segments(value, p, segments, bytes, now);
        return;
    }
    struct flow_value fresh = {
        .packets = segments,
        .bytes = bytes,
        .first_seen_ns = now,
        .last_seen_ns = now,
        .tcp_flags = p->tcp_flags,
    };
    if (flows.insert(&key, &fresh) == 0) {
        count(COUNT_FLOWS_CREATED);
        return;
    }
    /* Another CPU inserted the flow meanwhile (this CPU's slot is zero), or
     * the map refused it. */
    value = flows.lookup(&key);
    if (value)
        add_segments(value, p, segments, bytes, now);
    else
        count(COUNT_FLOWS_FAILED);
}
#else
static __always_inline void account(const struct packet *p, __u32 ifindex, __u8 direction,
                                    __u64 segments, __u64 bytes)
{
}
#endif

#endif
