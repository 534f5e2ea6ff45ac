//! Counters named exactly as Linux's SNMP MIB (`netstat -s`, `nstat`): `Tcp:`, `TcpExt:`, `Ip:`, plus `Xdptcp:`
//! for things only a kernel-bypass stack has (rings, frames, hand-offs, ARP).
//!
//! Each engine (one per worker) owns a plain array; readers sum the arrays of all workers. No atomics on the fast
//! path: a worker is the only writer of its counters, and the control plane reads a snapshot.

macro_rules! counters {
    ($( $group:ident : $( $name:ident ),+ $(,)? ; )+) => {
        /// One counter. The variant name is the Linux MIB name.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
        #[repr(u16)]
        pub enum Counter { $( $( $name, )+ )+ }

        impl Counter {
            /// Every counter, in display order.
            pub const ALL: &'static [Counter] = &[ $( $( Counter::$name, )+ )+ ];
            pub const COUNT: usize = Counter::ALL.len();

            /// The MIB name, e.g. `ActiveOpens`.
            pub fn name(self) -> &'static str {
                match self { $( $( Counter::$name => stringify!($name), )+ )+ }
            }

            /// The `netstat -s` / `nstat` group, e.g. `Tcp`, `TcpExt`, `Ip`, `Xdptcp`.
            pub fn group(self) -> &'static str {
                match self { $( $( Counter::$name => stringify!($group), )+ )+ }
            }

            /// Looks a counter up by MIB name, with or without its group prefix (`TcpExt:TCPTimeouts`).
            pub fn from_name(name: &str) -> Option<Counter> {
                let bare = name.rsplit(':').next().unwrap_or(name);
                Counter::ALL.iter().copied().find(|c| c.name() == bare)
            }
        }
    };
}

counters! {
    Ip: InReceives, InHdrErrors, InAddrErrors, InUnknownProtos, InDiscards, InDelivers, OutRequests, ReasmReqds;
    Icmp: InMsgs, InEchos, OutMsgs, OutEchoReps, InDestUnreachs;
    Tcp: ActiveOpens, PassiveOpens, AttemptFails, EstabResets, InSegs, OutSegs, RetransSegs, InErrs, OutRsts,
        InCsumErrors;
    TcpExt: SyncookiesSent, SyncookiesRecv, SyncookiesFailed, EmbryonicRsts, TW, TWRecycled, TWKilled, PAWSActive,
        PAWSEstab, DelayedACKs, DelayedACKLost, ListenOverflows, ListenDrops, TCPPureAcks, TCPHPAcks,
        TCPRenoRecovery, TCPSackRecovery, TCPRenoFailures, TCPTimeouts, TCPFastRetrans, TCPSlowStartRetrans,
        TCPSynRetrans, TCPLossProbes, TCPLossProbeRecovery, TCPAbortOnData, TCPAbortOnClose, TCPAbortOnMemory, TCPAbortOnTimeout,
        TCPAbortOnLinger, TCPAbortFailed, TCPMemoryPressures, TCPRcvQDrop, TCPOFOQueue, TCPOFODrop, TCPOFOMerge,
        TCPChallengeACK, TCPSYNChallenge, TCPFastOpenActive, TCPFastOpenActiveFail, TCPFastOpenPassive,
        TCPFastOpenPassiveFail, TCPFastOpenListenOverflow, TCPFastOpenCookieReqd, TCPTimeWaitOverflow,
        TCPReqQFullDoCookies, TCPReqQFullDrop, TCPRetransFail, TCPOrigDataSent, TCPKeepAlive, TCPDelivered,
        TCPZeroWindowDrop, TCPWantZeroWindowAdv, TCPToZeroWindowAdv, TCPFromZeroWindowAdv, TCPWinProbe,
        TCPACKSkippedSynRecv, TCPACKSkippedPAWS, TCPACKSkippedSeq, TCPACKSkippedChallenge, TCPSpuriousRTOs,
        TCPDSACKOldSent, TCPDSACKRecv, TCPSACKReneging, TCPDSACKOfoSent, OutOfWindowIcmps, TCPOrphanDrop,
        TCPConnectNoPorts, TCPACKSkippedTimeWait, PruneCalled, RcvPruned, OfoPruned;
    Xdptcp: RxFrames, TxFrames, RxMalformed, RxNotOurs, RxRingEmpty, TxRingFull, FillRingEmpty, FramesInUse,
        RxToEngine, ArpRequestsIn, ArpRepliesIn, ArpRequestsOut, ArpRepliesOut, ArpQueueDrops, ArpResolveFails,
        TxNoBuffer, ConnTableFull, OrphanConns, TimeWaitConns, HandoffOut, HandoffIn, HandoffDrop, ArpIncompleteDrops,
        ArpAddrConflicts, RxVlanMismatch, InMartianSrc, InSrcRouteDrops;
}

/// A worker's counters: a flat array indexed by [`Counter`].
#[derive(Clone)]
pub struct Counters {
    values: [u64; Counter::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters { values: [0; Counter::COUNT] }
    }
}

impl core::fmt::Debug for Counters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut m = f.debug_map();
        for (c, v) in self.iter().filter(|(_, v)| *v != 0) {
            m.entry(&format_args!("{}:{}", c.group(), c.name()), &v);
        }
        m.finish()
    }
}

impl Counters {
    #[inline]
    pub fn inc(&mut self, c: Counter) {
        self.values[c as usize] += 1;
    }
    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.values[c as usize] += n;
    }
    /// For gauges (frames in use, TIME_WAIT count): overwrite rather than accumulate.
    #[inline]
    pub fn set(&mut self, c: Counter, v: u64) {
        self.values[c as usize] = v;
    }
    #[inline]
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }
    /// Adds another worker's counters into this one (the control plane sums per-worker snapshots).
    pub fn merge(&mut self, other: &Counters) {
        for (a, b) in self.values.iter_mut().zip(other.values.iter()) {
            *a += b;
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(move |&c| (c, self.values[c as usize]))
    }
    /// `netstat -s`-like text: `Group:Name value`, one per line, zeroes included so scripts see every name.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (c, v) in self.iter() {
            s.push_str(&format!("{}:{} {}\n", c.group(), c.name(), v));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &c in Counter::ALL {
            assert!(seen.insert(c.name()), "duplicate {}", c.name());
            assert_eq!(Counter::from_name(c.name()), Some(c));
            assert_eq!(Counter::from_name(&format!("{}:{}", c.group(), c.name())), Some(c));
        }
        assert_eq!(Counter::ActiveOpens.group(), "Tcp");
        assert_eq!(Counter::TCPTimeouts.group(), "TcpExt");
    }

    #[test]
    fn merge_sums() {
        let mut a = Counters::default();
        let mut b = Counters::default();
        a.inc(Counter::InSegs);
        b.add(Counter::InSegs, 41);
        a.merge(&b);
        assert_eq!(a.get(Counter::InSegs), 42);
        assert!(a.to_text().contains("Tcp:InSegs 42\n"));
    }
}
