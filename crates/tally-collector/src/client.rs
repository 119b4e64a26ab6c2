//! Telling clients apart without knowing who they are: a [`ClientKey`] is a keyed hash of
//! the client's IP address under a random salt that lives in memory only and is replaced
//! every `client_salt_rotation` (a day by default). The address itself is never kept,
//! logged or stored, and a key means nothing once its salt is gone, so keys cannot be
//! joined across periods or after a restart.
//!
//! Keys serve two limits: the per-client request rate ([`RateLimiter`], 429 with
//! `Retry-After`, enforced by [`crate::serve`]) and the per-client share of new values
//! under a cardinality cap (`ingest::Caps`). Requests that do not come through
//! [`crate::serve`] (in-process tests) have no key and neither limit applies to them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A client, as far as the collector can tell within one salt period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// The keyed hash of the address.
    pub hash: u64,
    /// Which salt period it belongs to (counts per key are reset when it changes).
    pub period: u64,
}

/// The current salt and when it was made.
struct Salt {
    bytes: [u8; 32],
    period: u64,
    since: Instant,
}

fn random_salt() -> [u8; 32] {
    // Two v4 UUIDs: 244 bits from the OS generator, which uuid already uses.
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-client rate limit and key derivation.
pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    max_clients: usize,
    rotation: Duration,
    salt: Mutex<Salt>,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    period: u64,
    map: HashMap<u64, Bucket>,
    last_prune: Instant,
}

/// The bucket that clients share while the table of clients is full.
const OVERFLOW: u64 = 0;

impl RateLimiter {
    /// `per_second` 0 turns the request limit off (keys are still made for the cap shares).
    pub(crate) fn new(per_second: u32, burst: u32, max_clients: usize, rotation: Duration) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            max_clients: max_clients.max(1),
            rotation,
            salt: Mutex::new(Salt { bytes: random_salt(), period: 0, since: now }),
            buckets: Mutex::new(Buckets { period: 0, map: HashMap::new(), last_prune: now }),
        }
    }

    /// The key of a client at `ip`, under the current salt (rotated here when due).
    pub(crate) fn key(&self, ip: IpAddr) -> ClientKey {
        let mut salt = self.salt.lock().unwrap_or_else(|e| e.into_inner());
        if salt.since.elapsed() >= self.rotation {
            *salt = Salt { bytes: random_salt(), period: salt.period + 1, since: Instant::now() };
        }
        // An IPv6 client usually holds a whole /64: key on it, or one host could be a
        // billion clients.
        let bytes: Vec<u8> = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.octets().to_vec(),
                None => v6.octets()[..8].to_vec(),
            },
        };
        let digest = Sha256::new().chain_update(salt.bytes).chain_update(&bytes).finalize();
        let hash = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")).max(OVERFLOW + 1);
        ClientKey { hash, period: salt.period }
    }

    /// Takes one request's token for `client`: `Ok` to serve it, or `Err(seconds)` to wait.
    pub(crate) fn check(&self, client: ClientKey) -> Result<(), u32> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.period != client.period {
            // Keys of the old salt can never come back.
            buckets.map.clear();
            buckets.period = client.period;
        }
        let mut key = client.hash;
        if !buckets.map.contains_key(&key) && buckets.map.len() >= self.max_clients {
            // At most once a second: forget clients whose bucket has refilled (idle ones).
            if now.duration_since(buckets.last_prune) >= Duration::from_secs(1) {
                let (per_second, burst) = (self.per_second, self.burst);
                buckets.map.retain(|k, b| {
                    *k == OVERFLOW || b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < burst
                });
                buckets.last_prune = now;
            }
            if buckets.map.len() >= self.max_clients {
                key = OVERFLOW;
            }
        }
        let bucket = buckets.map.entry(key).or_insert(Bucket { tokens: self.burst, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u32)
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().expect("lock").map.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn keys_are_stable_within_a_period_and_differ_across_salts() {
        let a = RateLimiter::new(1, 1, 10, Duration::from_secs(3600));
        let b = RateLimiter::new(1, 1, 10, Duration::from_secs(3600));
        let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
        assert_eq!(a.key(ip), a.key(ip));
        assert_ne!(a.key(ip).hash, b.key(ip).hash, "each salt is random");
        assert_ne!(a.key(ip), a.key(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 8))));
        // One /64 is one client.
        let v6 = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last));
        assert_eq!(a.key(v6(1)), a.key(v6(2)));
        let rotating = RateLimiter::new(1, 1, 10, Duration::ZERO);
        let (first, second) = (rotating.key(ip), rotating.key(ip));
        assert_ne!(first.period, second.period);
        assert_ne!(first.hash, second.hash, "a rotated salt makes new keys");
    }

    #[test]
    fn a_client_past_its_burst_waits_and_others_are_not_slowed() {
        let limiter = RateLimiter::new(2, 3, 100, Duration::from_secs(3600));
        let noisy = limiter.key(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
        let quiet = limiter.key(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)));
        assert_eq!((0..3).map(|_| limiter.check(noisy)).collect::<Vec<_>>(), [Ok(()), Ok(()), Ok(())]);
        assert_eq!(limiter.check(noisy), Err(1));
        assert_eq!(limiter.check(quiet), Ok(()));
        assert!(RateLimiter::new(0, 1, 1, Duration::from_secs(1)).check(noisy).is_ok(), "0 turns it off");
    }

    #[test]
    fn the_table_of_clients_is_bounded_and_idle_clients_leave_it() {
        let limiter = RateLimiter::new(1000, 1, 3, Duration::from_secs(3600));
        for i in 0..10u8 {
            let _ = limiter.check(limiter.key(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))));
        }
        assert!(limiter.tracked() <= 4, "3 clients and the shared overflow bucket");
        std::thread::sleep(Duration::from_millis(1100));
        // After a second every bucket has refilled: the idle clients make room.
        let late = limiter.key(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200)));
        assert!(limiter.check(late).is_ok());
        assert!(limiter.tracked() <= 2, "{}", limiter.tracked());
    }
}
