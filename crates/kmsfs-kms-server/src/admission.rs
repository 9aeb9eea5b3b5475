//! Which connections the server keeps when there are too many.
//!
//! A connection is accepted at once, always: a limit taken *before* accept
//! (the old semaphore) lets a few hundred idle sockets that never send a
//! byte lock every signed client out until they time out. Instead every
//! accepted connection is registered here, and when the server is full or a
//! peer holds too many, the newcomer makes room by shedding a connection
//! that is doing nothing:
//!
//! 1. an idle connection that never carried an authenticated request
//!    (a signed one over TCP, any over the Unix socket, where the kernel
//!    vouches for the peer), oldest first;
//! 2. else an idle authenticated one, oldest first;
//! 3. else (every connection is in the middle of a request) the newcomer is
//!    closed.
//!
//! A peer (an IP address, or a uid on the Unix socket) may hold at most
//! `per_peer` connections that have not authenticated; beyond that it
//! sheds its own oldest such connection, so a flood from one address costs
//! that address, not everyone. Idle connections are closed after
//! `idle_unauthenticated` (nothing signed yet) or `idle_authenticated`.
//!
//! Shedding is a graceful shutdown: hyper closes an idle connection at once
//! and lets a request in flight finish.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Who a connection comes from, for the per-peer limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKey {
    Ip(IpAddr),
    Uid(u32),
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections kept at once.
    pub total: usize,
    /// Unauthenticated connections one peer may hold.
    pub per_peer: usize,
    pub idle_unauthenticated: Duration,
    pub idle_authenticated: Duration,
}

struct Entry {
    peer: PeerKey,
    /// Requests being served on it now.
    busy: u32,
    authenticated: bool,
    /// When it last became idle (or was accepted).
    idle_since: Instant,
    close: Arc<Notify>,
}

struct Inner {
    next_id: u64,
    entries: HashMap<u64, Entry>,
}

/// The registry of open connections.
pub struct Admission {
    limits: Limits,
    inner: Mutex<Inner>,
}

/// A registered connection; dropping it unregisters.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    close: Arc<Notify>,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits: Limits {
                total: limits.total.max(1),
                per_peer: limits.per_peer.max(1),
                ..limits
            },
            inner: Mutex::new(Inner {
                next_id: 0,
                entries: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The registry holds no invariant a panic could break halfway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection from `peer`, shedding an idle one if the
    /// server or the peer is full; None when nothing could be shed (the
    /// caller closes the new connection).
    pub fn admit(self: &Arc<Self>, peer: PeerKey) -> Option<Ticket> {
        let mut inner = self.lock();
        let unauthenticated_of_peer = inner
            .entries
            .values()
            .filter(|e| e.peer == peer && !e.authenticated)
            .count();
        if unauthenticated_of_peer >= self.limits.per_peer {
            let victim = oldest_idle(&inner, |e| e.peer == peer && !e.authenticated);
            shed(&mut inner, victim?);
        }
        if inner.entries.len() >= self.limits.total {
            let victim =
                oldest_idle(&inner, |e| !e.authenticated).or_else(|| oldest_idle(&inner, |_| true));
            shed(&mut inner, victim?);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let close = Arc::new(Notify::new());
        inner.entries.insert(
            id,
            Entry {
                peer,
                busy: 0,
                authenticated: false,
                idle_since: Instant::now(),
                close: close.clone(),
            },
        );
        Some(Ticket {
            admission: self.clone(),
            id,
            close,
        })
    }

    /// Asks every connection idle for longer than its bound to close.
    pub fn close_idle(&self, now: Instant) {
        let inner = self.lock();
        for e in inner.entries.values() {
            let bound = if e.authenticated {
                self.limits.idle_authenticated
            } else {
                self.limits.idle_unauthenticated
            };
            if e.busy == 0 && now.duration_since(e.idle_since) >= bound {
                e.close.notify_one();
            }
        }
    }

    /// Connections registered now.
    pub fn open_connections(&self) -> usize {
        self.lock().entries.len()
    }
}

fn oldest_idle(inner: &Inner, which: impl Fn(&Entry) -> bool) -> Option<u64> {
    inner
        .entries
        .iter()
        .filter(|(_, e)| e.busy == 0 && which(e))
        .min_by_key(|(id, e)| (e.idle_since, **id))
        .map(|(id, _)| *id)
}

/// Unregisters `id` at once (so the newcomer's place is free now) and asks
/// its task to close it.
fn shed(inner: &mut Inner, id: u64) {
    if let Some(e) = inner.entries.remove(&id) {
        e.close.notify_one();
    }
}

impl Ticket {
    /// Resolves when the connection should close (shed, or idle too long).
    pub async fn closing(&self) {
        self.close.notified().await
    }

    /// A request started on this connection.
    pub fn begin(&self) {
        if let Some(e) = self.admission.lock().entries.get_mut(&self.id) {
            e.busy += 1;
        }
    }

    /// A request ended; `authenticated` if its caller was established.
    pub fn end(&self, authenticated: bool) {
        if let Some(e) = self.admission.lock().entries.get_mut(&self.id) {
            e.busy = e.busy.saturating_sub(1);
            e.authenticated |= authenticated;
            if e.busy == 0 {
                e.idle_since = Instant::now();
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.lock().entries.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_peer: usize) -> Limits {
        Limits {
            total,
            per_peer,
            idle_unauthenticated: Duration::from_secs(10),
            idle_authenticated: Duration::from_secs(60),
        }
    }

    fn ip(last: u8) -> PeerKey {
        PeerKey::Ip(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_full_server_sheds_idle_unauthenticated_connections_first() {
        let a = Admission::new(limits(3, 10));
        let signed = a.admit(ip(1)).unwrap();
        signed.begin();
        signed.end(true);
        let idle1 = a.admit(ip(2)).unwrap();
        let idle2 = a.admit(ip(2)).unwrap();
        // Full: the newcomer sheds the oldest unauthenticated idle one.
        let newcomer = a.admit(ip(3)).unwrap();
        assert_eq!(a.open_connections(), 3);
        let inner = a.lock();
        assert!(!inner.entries.contains_key(&idle1.id));
        assert!(inner.entries.contains_key(&idle2.id));
        assert!(inner.entries.contains_key(&signed.id));
        assert!(inner.entries.contains_key(&newcomer.id));
    }

    #[test]
    fn busy_connections_are_never_shed() {
        let a = Admission::new(limits(2, 10));
        let t1 = a.admit(ip(1)).unwrap();
        let t2 = a.admit(ip(2)).unwrap();
        t1.begin();
        t2.begin();
        assert!(
            a.admit(ip(3)).is_none(),
            "everything busy: newcomer refused"
        );
        t2.end(false);
        let t3 = a.admit(ip(3)).unwrap();
        assert!(!a.lock().entries.contains_key(&t2.id));
        assert!(a.lock().entries.contains_key(&t1.id));
        drop(t3);
        assert_eq!(a.open_connections(), 1);
    }

    #[test]
    fn one_peer_sheds_its_own_connections_not_others() {
        let a = Admission::new(limits(100, 2));
        let other = a.admit(ip(9)).unwrap();
        let f1 = a.admit(ip(1)).unwrap();
        let f2 = a.admit(ip(1)).unwrap();
        let f3 = a.admit(ip(1)).unwrap();
        let inner = a.lock();
        assert!(!inner.entries.contains_key(&f1.id));
        assert!(inner.entries.contains_key(&f2.id) && inner.entries.contains_key(&f3.id));
        assert!(inner.entries.contains_key(&other.id));
    }

    #[tokio::test]
    async fn idle_connections_are_told_to_close_after_their_bound() {
        let a = Admission::new(limits(10, 10));
        let fresh = a.admit(ip(1)).unwrap();
        let signed = a.admit(ip(2)).unwrap();
        signed.begin();
        signed.end(true);
        a.close_idle(Instant::now() + Duration::from_secs(11));
        tokio::time::timeout(Duration::from_secs(1), fresh.closing())
            .await
            .expect("the unauthenticated idle connection is told to close");
        let told = tokio::time::timeout(Duration::from_millis(50), signed.closing()).await;
        assert!(told.is_err(), "an authenticated one keeps its longer bound");
        a.close_idle(Instant::now() + Duration::from_secs(61));
        tokio::time::timeout(Duration::from_secs(1), signed.closing())
            .await
            .expect("then it is told too");
    }
}
