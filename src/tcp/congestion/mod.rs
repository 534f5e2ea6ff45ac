//! Placeholder until the implementation from branch `tcpds` lands.
use std::time::Duration;
use crate::time::Instant;
pub trait CongestionControl {
    fn name(&self) -> &'static str; fn cwnd(&self) -> u32; fn ssthresh(&self) -> u32; fn set_mss(&mut self, mss: u32);
    fn on_ack(&mut self, now: Instant, bytes_acked: u32, rtt: Option<Duration>);
    fn on_enter_recovery(&mut self, now: Instant, flight_size: u32); fn on_dup_ack_in_recovery(&mut self);
    fn on_partial_ack(&mut self, bytes_acked: u32); fn on_exit_recovery(&mut self, flight_size: u32);
    fn on_rto(&mut self, flight_size: u32); fn on_idle_restart(&mut self); fn undo(&mut self, c: u32, s: u32);
}
pub struct NewReno { cwnd: u32, ssthresh: u32, mss: u32, iw: u32, acc: u32 }
pub enum Congestion { NewReno(NewReno) }
impl Congestion { pub fn new(a: &str, mss: u32, iw: u32) -> Option<Self> { (a == "reno").then(|| Congestion::NewReno(NewReno { cwnd: mss * iw, ssthresh: u32::MAX / 2, mss, iw, acc: 0 })) } }
impl CongestionControl for Congestion {
    fn name(&self) -> &'static str { "reno" }
    fn cwnd(&self) -> u32 { let Congestion::NewReno(r) = self; r.cwnd }
    fn ssthresh(&self) -> u32 { let Congestion::NewReno(r) = self; r.ssthresh }
    fn set_mss(&mut self, mss: u32) { let Congestion::NewReno(r) = self; r.mss = mss; r.cwnd = mss * r.iw; }
    fn on_ack(&mut self, _: Instant, b: u32, _: Option<Duration>) { let Congestion::NewReno(r) = self; if r.cwnd < r.ssthresh { r.cwnd += b.min(2 * r.mss) } else { r.acc += b; if r.acc >= r.cwnd { r.acc -= r.cwnd; r.cwnd += r.mss } } }
    fn on_enter_recovery(&mut self, _: Instant, f: u32) { let Congestion::NewReno(r) = self; r.ssthresh = (f / 2).max(2 * r.mss); r.cwnd = r.ssthresh + 3 * r.mss }
    fn on_dup_ack_in_recovery(&mut self) { let Congestion::NewReno(r) = self; r.cwnd += r.mss }
    fn on_partial_ack(&mut self, b: u32) { let Congestion::NewReno(r) = self; r.cwnd = r.cwnd.saturating_sub(b).max(r.mss); if b >= r.mss { r.cwnd += r.mss } }
    fn on_exit_recovery(&mut self, f: u32) { let Congestion::NewReno(r) = self; r.cwnd = r.ssthresh.min(f.max(r.mss) + r.mss) }
    fn on_rto(&mut self, f: u32) { let Congestion::NewReno(r) = self; r.ssthresh = (f / 2).max(2 * r.mss); r.cwnd = r.mss }
    fn on_idle_restart(&mut self) { let Congestion::NewReno(r) = self; r.cwnd = r.cwnd.min(r.iw * r.mss) }
    fn undo(&mut self, c: u32, s: u32) { let Congestion::NewReno(r) = self; r.cwnd = c; r.ssthresh = s }
}
