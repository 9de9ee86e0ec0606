//! Which refused deliveries are stored. Anyone who can reach an ingestion endpoint can send
//! requests that are refused (a bad signature, a body that is not JSON), and each used to be
//! stored whole. Now at most `retention.rejected.per_address_per_minute` are stored per client
//! address (IPv6 addresses counted per /64, which one client usually holds whole) and
//! `per_minute` from all addresses together; the others are answered as before but only
//! counted (`signalbox_rejected_unstored_total`), with one warning per address and minute.
//!
//! Minutes are fixed windows on the engine's clock. The table of addresses is emptied at each
//! window and holds at most `per_minute` addresses plus [`MAX_TRACKED`] beyond it, so a
//! sender spreading requests over many addresses cannot grow it either.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};

use crate::store::RejectedConfig;

/// The client's address, as the server's accept loop gave it (`None` when the router is
/// served some other way). Behind a proxy this is the proxy's address.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>();
        Ok(Self(peer.map(|ConnectInfo(addr)| addr.ip())))
    }
}

/// Addresses tracked beyond those that stored something in a window (those over their limit,
/// warned once each); past it, further addresses are not tracked (their rejections are not
/// stored, and one warning per window says so).
pub const MAX_TRACKED: usize = 1024;

const WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The per-address tally of refused deliveries in the current minute.
#[derive(Debug)]
pub struct Rejections {
    body_bytes: usize,
    per_address: u32,
    per_minute: u32,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    started: Option<DateTime<Utc>>,
    stored: u32,
    /// Whether the all-addresses limit was reported this window.
    warned_total: bool,
    /// Whether the untracked addresses were reported this window.
    warned_untracked: bool,
    addresses: HashMap<Option<IpAddr>, Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    stored: u32,
    warned: bool,
}

/// What to do with one refused delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Store,
    /// Over a limit: answer, count, do not store.
    Drop,
}

impl Rejections {
    pub fn new(config: &RejectedConfig) -> Self {
        Self {
            body_bytes: config.body_bytes,
            per_address: config.per_address_per_minute,
            per_minute: config.per_minute,
            window: Mutex::new(Window::default()),
        }
    }

    /// Bytes of a refused delivery's body that are stored.
    pub fn body_bytes(&self) -> usize {
        self.body_bytes
    }

    /// Whether a delivery refused at `now` from `client` (unknown: `None`) is stored.
    pub fn admit(&self, client: Option<IpAddr>, now: DateTime<Utc>) -> Verdict {
        let key = client.map(bucket);
        let mut guard = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let w = &mut *guard;
        let expired = w
            .started
            .is_none_or(|started| now < started || now - started >= WINDOW);
        if expired {
            // The table is emptied, not dropped: a flood's next minute reuses its room.
            let mut addresses = std::mem::take(&mut w.addresses);
            addresses.clear();
            *w = Window {
                started: Some(now),
                addresses,
                ..Window::default()
            };
        }
        let tracked = w.addresses.len();
        let capacity = self.per_minute as usize + MAX_TRACKED;
        if !w.addresses.contains_key(&key) && tracked >= capacity {
            if !std::mem::replace(&mut w.warned_untracked, true) {
                tracing::warn!(
                    addresses = tracked,
                    "refused deliveries from too many addresses this minute: the rest are answered but not stored"
                );
            }
            return dropped();
        }
        let over_total = w.stored >= self.per_minute;
        let tally = w.addresses.entry(key).or_default();
        if tally.stored < self.per_address && !over_total {
            tally.stored += 1;
            w.stored += 1;
            return Verdict::Store;
        }
        if !std::mem::replace(&mut tally.warned, true) {
            let client = key.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
            if tally.stored >= self.per_address {
                tracing::warn!(%client, limit = self.per_address, "refused deliveries from this address over the limit per minute: answered but not stored until the minute ends");
            } else if !std::mem::replace(&mut w.warned_total, true) {
                tracing::warn!(
                    limit = self.per_minute,
                    "refused deliveries over the limit per minute: answered but not stored until the minute ends"
                );
            }
        }
        dropped()
    }
}

fn dropped() -> Verdict {
    metrics::counter!("signalbox_rejected_unstored_total").increment(1);
    Verdict::Drop
}

/// The address a client is counted under: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_address: u32, per_minute: u32) -> Rejections {
        Rejections::new(&RejectedConfig {
            per_address_per_minute: per_address,
            per_minute,
            ..RejectedConfig::default()
        })
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn stored(limiter: &Rejections, ip: &str, now: DateTime<Utc>, n: usize) -> usize {
        let ip: IpAddr = ip.parse().unwrap();
        (0..n)
            .filter(|_| limiter.admit(Some(ip), now) == Verdict::Store)
            .count()
    }

    #[test]
    fn each_address_stores_its_limit_per_minute() {
        let limiter = limiter(3, 100);
        assert_eq!(stored(&limiter, "203.0.113.7", at(0), 10), 3);
        assert_eq!(
            stored(&limiter, "203.0.113.8", at(1), 10),
            3,
            "another address"
        );
        assert_eq!(
            stored(&limiter, "203.0.113.7", at(59), 10),
            0,
            "same minute"
        );
        assert_eq!(
            stored(&limiter, "203.0.113.7", at(60), 10),
            3,
            "next minute"
        );
        assert_eq!(
            stored(&limiter, "::ffff:203.0.113.7", at(61), 10),
            0,
            "an IPv4-mapped address is the IPv4 address"
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_all_addresses_share_a_limit() {
        let per64 = limiter(3, 100);
        assert_eq!(stored(&per64, "2001:db8:1:2::1", at(0), 2), 2);
        assert_eq!(stored(&per64, "2001:db8:1:2:ffff::9", at(0), 5), 1);
        assert_eq!(stored(&per64, "2001:db8:1:3::1", at(0), 5), 3);

        let shared = limiter(3, 10);
        let total: usize = (0..20)
            .map(|i| stored(&shared, &format!("198.51.100.{i}"), at(0), 3))
            .sum();
        assert_eq!(total, 10);
    }

    #[test]
    fn the_table_of_addresses_is_bounded() {
        let limiter = limiter(1, 10);
        for i in 0..5_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            limiter.admit(Some(ip), at(0));
        }
        let tracked = limiter.window.lock().unwrap().addresses.len();
        assert_eq!(tracked, 10 + MAX_TRACKED);
        assert_eq!(stored(&limiter, "192.0.2.1", at(60), 1), 1);
        assert_eq!(
            limiter.window.lock().unwrap().addresses.len(),
            1,
            "emptied each minute"
        );
    }
}
