// SPDX-License-Identifier: MIT OR Apache-2.0
//
// xdptcp steering program: hands the frames the user-space stack owns to the AF_XDP socket bound to the receiving
// queue, and passes everything else to the kernel so the host keeps working.
//
// Owned by the stack:
//   - ARP whose target protocol address is a stack address (requests and replies: RFC 826);
//   - ICMP echo requests to a stack address (RFC 792);
//   - TCP to a listened (address, port) or (0.0.0.0, port) in `listen_ports`;
//   - TCP to the local (address, port) of an active open, in `active_ports` (user space adds and removes them);
//   - any TCP to an address marked ADDR_OWN_TCP in `local_addrs` (the address is the stack's alone, so the stack must
//     answer unknown ports with RST, RFC 9293 §3.10.7.1, rather than let the kernel drop them silently).
// Only frames on the stack's VLAN are considered: 802.1Q-tagged with the configured VID, or untagged when none is
// configured (`steer_config`). Every other tag, 802.1ad service tags included, goes to the kernel untouched, so
// VLAN isolation holds and the host's own VLAN interfaces keep working.
// Everything is bounds-checked against data_end before it is read, as the verifier demands.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_QUEUES 256

// local_addrs value bits.
#define ADDR_ARP_ICMP 1u // answer ARP and ping for this address
#define ADDR_OWN_TCP 2u  // every TCP segment to this address belongs to the stack

// Indices into the `stats` per-CPU array (mirrored in src/xdp/loader.rs).
enum stat {
    STAT_SEEN = 0,
    STAT_REDIRECT_ARP,
    STAT_REDIRECT_ICMP,
    STAT_REDIRECT_TCP,
    STAT_PASS,
    STAT_MALFORMED,
    STAT_NO_SOCKET,
    STAT_COUNT,
};

struct endpoint {
    __be32 addr;
    __be16 port;
    __u16 pad; // always zero so keys compare as bytes
};

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, MAX_QUEUES);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 256); // a load generator may own many source addresses
    __type(key, __be32);
    __type(value, __u32);
} local_addrs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct endpoint);
    __type(value, __u32);
} listen_ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct endpoint);
    __type(value, __u32);
} active_ports SEC(".maps");

// Index 0: the stack's 802.1Q VLAN id (1..4094), or 0 for untagged (set by src/xdp/loader.rs `set_vlan`).
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} steer_config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, STAT_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 which)
{
    __u64 *v = bpf_map_lookup_elem(&stats, &which);
    if (v)
        *v += 1;
}

static __always_inline int pass(void)
{
    count(STAT_PASS);
    return XDP_PASS;
}

static __always_inline int to_stack(struct xdp_md *ctx, __u32 why)
{
    __u32 queue = ctx->rx_queue_index;
    // Only redirect when a socket sits on this queue; otherwise the frame would be dropped and, as the kernel does
    // not own the address either, it is better counted and passed (the kernel drops it with its own counters).
    if (!bpf_map_lookup_elem(&xsks_map, &queue)) {
        count(STAT_NO_SOCKET);
        return XDP_PASS;
    }
    count(why);
    return bpf_redirect_map(&xsks_map, queue, XDP_PASS);
}

static __always_inline __u32 addr_flags(__be32 addr)
{
    __u32 *flags = bpf_map_lookup_elem(&local_addrs, &addr);
    return flags ? *flags : 0;
}

// ARP for IPv4 over Ethernet (RFC 826): the fixed 28-byte body.
struct arp_eth_ipv4 {
    __be16 htype;
    __be16 ptype;
    __u8 hlen;
    __u8 plen;
    __be16 oper;
    __u8 sha[ETH_ALEN];
    __u8 spa[4];
    __u8 tha[ETH_ALEN];
    __u8 tpa[4];
} __attribute__((packed));

// <linux/icmp.h> drags in libc's socket headers, which a `-target bpf` compile cannot use; the first four bytes
// are all we read (RFC 792).
struct icmp_head {
    __u8 type;
    __u8 code;
    __be16 checksum;
};
#define ICMP_ECHO_REQUEST 8

struct vlan_tag {
    __be16 tci;
    __be16 encapsulated_proto;
};

SEC("xdp")
int xdptcp_steer(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    count(STAT_SEEN);

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return pass();
    __be16 proto = eth->h_proto;
    void *l3 = eth + 1;

    __u32 zero = 0;
    __u32 *want = bpf_map_lookup_elem(&steer_config, &zero);
    __u32 vlan = want ? *want : 0;
    if (proto == bpf_htons(ETH_P_8021Q)) {
        // Our VLAN only (IEEE 802.1Q: VID is the low 12 bits of the TCI).
        struct vlan_tag *tag = l3;
        if ((void *)(tag + 1) > data_end)
            return pass();
        if (vlan == 0 || (bpf_ntohs(tag->tci) & 0x0fff) != vlan)
            return pass();
        proto = tag->encapsulated_proto;
        l3 = tag + 1;
    } else if (proto == bpf_htons(ETH_P_8021AD) || vlan != 0) {
        // A service tag (the stack never answers QinQ) or an untagged frame while the stack lives on a VLAN.
        return pass();
    }

    if (proto == bpf_htons(ETH_P_ARP)) {
        struct arp_eth_ipv4 *arp = l3;
        if ((void *)(arp + 1) > data_end)
            return pass();
        if (arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != ETH_ALEN ||
            arp->plen != 4)
            return pass();
        __be32 tpa;
        __builtin_memcpy(&tpa, arp->tpa, 4);
        if (addr_flags(tpa) & ADDR_ARP_ICMP)
            return to_stack(ctx, STAT_REDIRECT_ARP);
        return pass();
    }

    if (proto != bpf_htons(ETH_P_IP))
        return pass();

    struct iphdr *ip = l3;
    if ((void *)(ip + 1) > data_end)
        return pass();
    if (ip->version != 4 || ip->ihl < 5) {
        count(STAT_MALFORMED);
        return pass();
    }
    __u32 flags = addr_flags(ip->daddr);
    // Fragments are not reassembled by the stack (it always sets DF and negotiates MSS); leave them to the kernel.
    if (ip->frag_off & bpf_htons(0x3fff))
        return pass();
    void *l4 = (void *)ip + ip->ihl * 4;

    if (ip->protocol == IPPROTO_ICMP) {
        struct icmp_head *icmp = l4;
        if ((void *)(icmp + 1) > data_end)
            return pass();
        if (icmp->type == ICMP_ECHO_REQUEST && (flags & ADDR_ARP_ICMP))
            return to_stack(ctx, STAT_REDIRECT_ICMP);
        return pass();
    }

    if (ip->protocol != IPPROTO_TCP)
        return pass();
    struct tcphdr *tcp = l4;
    if ((void *)(tcp + 1) > data_end)
        return pass();
    if (flags & ADDR_OWN_TCP)
        return to_stack(ctx, STAT_REDIRECT_TCP);

    struct endpoint key = { .addr = ip->daddr, .port = tcp->dest, .pad = 0 };
    if (bpf_map_lookup_elem(&active_ports, &key) || bpf_map_lookup_elem(&listen_ports, &key))
        return to_stack(ctx, STAT_REDIRECT_TCP);
    key.addr = 0; // wildcard listener
    if (bpf_map_lookup_elem(&listen_ports, &key))
        return to_stack(ctx, STAT_REDIRECT_TCP);
    return pass();
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
