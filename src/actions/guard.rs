//! Where outgoing requests may go: every address a target resolves to is checked, for
//! webhooks, strategy connectors and SMTP alike.
//!
//! [`local_reason`] classifies one address (loopback, private, link-local, CGNAT, unique-local,
//! multicast, reserved ranges, and the IPv6 forms that embed an IPv4 address, judged by the
//! address they embed). A literal IP host is checked before sending ([`check_host`]); a name is
//! checked when it is resolved, by [`GuardedResolver`] inside the HTTP client and by
//! [`resolve`] for SMTP, so the address checked is the address connected to. A name is refused
//! when ANY of its addresses is local, so a DNS answer mixing a public and a private address
//! (DNS rebinding) is refused rather than raced. Hosts in an allow-list may be local.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Why a target may not be contacted, or that its name could not be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardError {
    /// The host is a local address: a permanent failure (refused next time too).
    #[error("host '{host}' is a {class} address; list it in {setting} to allow it")]
    LocalAddress {
        host: String,
        class: &'static str,
        setting: &'static str,
    },
    /// The name resolves to a local address: a permanent failure.
    #[error(
        "host '{host}' resolves to {address}, a {class} address; list it in {setting} to allow it"
    )]
    ResolvesLocal {
        host: String,
        address: IpAddr,
        class: &'static str,
        setting: &'static str,
    },
    /// `*.localhost` names are local by definition (RFC 6761) and are not looked up.
    #[error("host '{host}' is a localhost name; list it in {setting} to allow it")]
    LocalhostName { host: String, setting: &'static str },
    /// The name did not resolve (worth trying again later).
    #[error("cannot resolve host '{host}': {reason}")]
    Lookup { host: String, reason: String },
}

impl GuardError {
    /// Whether trying again would be refused the same way.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Lookup { .. })
    }
}

/// Hosts that may be local, as configured: names compared without case and without one
/// trailing dot, IP addresses compared as addresses (`::1` and `0:0:0:0:0:0:0:1` are one host;
/// `::ffff:127.0.0.1` is not `127.0.0.1`).
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    hosts: Vec<String>,
    /// The setting to name in refusals (`actions.allowed_hosts`).
    pub setting: &'static str,
}

impl AllowList {
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a String>, setting: &'static str) -> Self {
        Self {
            hosts: hosts.into_iter().map(|h| normalize_host(h)).collect(),
            setting,
        }
    }

    pub fn contains(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.hosts.contains(&host)
    }
}

/// A host as compared: lowercase, without brackets or one trailing dot, an IP address in its
/// canonical text.
fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

/// Checks a URL's host before anything is sent: a literal IP address is classified here (the
/// HTTP client never resolves it), a `*.localhost` name is refused; other names are checked
/// when they resolve.
pub fn check_host(host: &url::Host<&str>, allowed: &AllowList) -> Result<(), GuardError> {
    let text = match host {
        url::Host::Domain(d) => (*d).to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    if allowed.contains(&text) {
        return Ok(());
    }
    match host {
        url::Host::Ipv4(ip) => check_ip(&text, IpAddr::V4(*ip), allowed.setting),
        url::Host::Ipv6(ip) => check_ip(&text, IpAddr::V6(*ip), allowed.setting),
        url::Host::Domain(name) => check_name(name, allowed.setting),
    }
}

/// A name given as a host (a URL's, the SMTP server's): an IP address written as text is
/// checked as one; `*.localhost` is refused.
fn check_name(name: &str, setting: &'static str) -> Result<(), GuardError> {
    let bare = normalize_host(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return check_ip(name, ip, setting);
    }
    if bare.ends_with(".localhost") {
        return Err(GuardError::LocalhostName {
            host: name.to_owned(),
            setting,
        });
    }
    Ok(())
}

fn check_ip(host: &str, ip: IpAddr, setting: &'static str) -> Result<(), GuardError> {
    match local_reason(ip) {
        Some(class) => Err(GuardError::LocalAddress {
            host: host.to_owned(),
            class,
            setting,
        }),
        None => Ok(()),
    }
}

fn check_resolved(host: &str, ip: IpAddr, setting: &'static str) -> Result<(), GuardError> {
    match local_reason(ip) {
        Some(class) => Err(GuardError::ResolvesLocal {
            host: host.to_owned(),
            address: ip,
            class,
            setting,
        }),
        None => Ok(()),
    }
}

/// Resolves `host` and checks every address: refused when any is local, unless the host is
/// allow-listed. Addresses are returned with `port`.
pub async fn resolve(
    host: &str,
    port: u16,
    allowed: &AllowList,
) -> Result<Vec<SocketAddr>, GuardError> {
    let listed = allowed.contains(host);
    if !listed {
        check_name(host, allowed.setting)?;
    }
    let bare = normalize_host(host);
    let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare.as_str(), port))
            .await
            .map_err(|e| GuardError::Lookup {
                host: host.to_owned(),
                reason: e.to_string(),
            })?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(GuardError::Lookup {
            host: host.to_owned(),
            reason: "no addresses".into(),
        });
    }
    if !listed {
        for address in &addresses {
            check_resolved(host, address.ip(), allowed.setting)?;
        }
    }
    Ok(addresses)
}

/// The HTTP client's resolver: [`resolve`] for every name the client looks up.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allowed: Arc<AllowList>,
}

impl GuardedResolver {
    pub fn new(allowed: AllowList) -> Self {
        Self {
            allowed: Arc::new(allowed),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolve(&host, 0, &allowed).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The guard's refusal inside an error's chain of sources (a request error whose cause is the
/// resolver's refusal).
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a GuardError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(guard) = e.downcast_ref::<GuardError>() {
            return Some(guard);
        }
        current = e.source();
    }
    None
}

/// Why an address may not be contacted, as the name of its class, or `None` for a public
/// address. IPv6 forms that embed an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4,
/// Teredo) are judged by the IPv4 address they embed.
pub fn local_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_broadcast() => "broadcast",
        (0, _, _) => "reserved (0.0.0.0/8)",
        (127, _, _) => "loopback",
        (10, _, _) => "private",
        (172, 16..=31, _) => "private",
        (192, 168, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (CGNAT, 100.64.0.0/10)",
        (192, 0, 0) => "reserved (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    match s {
        // IPv4-mapped ::ffff:a.b.c.d
        [0, 0, 0, 0, 0, 0xffff, h, l] => return v4_reason(embedded(h, l)),
        // IPv4-translated ::ffff:0:a.b.c.d (RFC 2765, SIIT)
        [0, 0, 0, 0, 0xffff, 0, h, l] => return v4_reason(embedded(h, l)),
        // IPv4-compatible ::a.b.c.d (deprecated)
        [0, 0, 0, 0, 0, 0, h, l] => return v4_reason(embedded(h, l)),
        // NAT64 well-known prefix 64:ff9b::/96
        [0x64, 0xff9b, 0, 0, 0, 0, h, l] => return v4_reason(embedded(h, l)),
        _ => {}
    }
    // Local-use NAT64 (64:ff9b:1::/48, RFC 8215): a translator inside the operator's own
    // network, where the IPv4 address sits depends on its prefix length: refused whole.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    // 6to4 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return v4_reason(embedded(s[1], s[2]));
    }
    // Teredo 2001:0::/32: the server's address in plain, the client's inverted at the end.
    if s[0] == 0x2001 && s[1] == 0 {
        return v4_reason(embedded(!s[6], !s[7])).or_else(|| v4_reason(embedded(s[2], s[3])));
    }
    Some(match s[0] {
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "site-local (deprecated)",
        x if x & 0xfe00 == 0xfc00 => "unique-local",
        x if x & 0xff00 == 0xff00 => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x3fff if s[1] & 0xf000 == 0 => "documentation",
        0x2001 if s[1] == 0x0002 && s[2] == 0 => "benchmarking",
        0x0100 if s[1..4] == [0, 0, 0] => "reserved (discard, 100::/64)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(ip: &str) -> Option<&'static str> {
        local_reason(ip.parse().unwrap())
    }

    #[test]
    fn every_local_ipv4_range_is_refused() {
        for (ip, class) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "reserved (0.0.0.0/8)"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (CGNAT, 100.64.0.0/10)"),
            ("100.127.255.255", "shared (CGNAT, 100.64.0.0/10)"),
            ("192.0.0.8", "reserved (192.0.0.0/24)"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved (240.0.0.0/4)"),
            ("255.255.255.255", "broadcast"),
        ] {
            assert_eq!(reason(ip), Some(class), "{ip}");
        }
    }

    #[test]
    fn public_ipv4_addresses_and_range_edges_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "192.0.1.1",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
    }

    #[test]
    fn every_local_ipv6_range_is_refused() {
        for (ip, class) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("febf:ffff::1", "link-local"),
            ("fec0::1", "site-local (deprecated)"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("ff02::1", "multicast"),
            ("ff05::2", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001:2::1", "benchmarking"),
            ("100::1", "reserved (discard, 100::/64)"),
            ("64:ff9b:1::1", "local-use NAT64 (64:ff9b:1::/48)"),
            ("64:ff9b:1:ffff::a00:1", "local-use NAT64 (64:ff9b:1::/48)"),
        ] {
            assert_eq!(reason(ip), Some(class), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_embedding_ipv4_are_judged_by_the_embedded_address() {
        for (ip, class) in [
            // IPv4-mapped, in each spelling
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:7f00:1", "loopback"),
            ("::ffff:0:7f00:1", "loopback"),
            ("::ffff:0:a00:1", "private"),
            ("0:0:0:0:0:ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:100.64.0.1", "shared (CGNAT, 100.64.0.0/10)"),
            ("::ffff:0.0.0.0", "unspecified"),
            // IPv4-compatible
            ("::127.0.0.1", "loopback"),
            ("::192.168.0.1", "private"),
            ("::2", "reserved (0.0.0.0/8)"),
            // NAT64 well-known prefix
            ("64:ff9b::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("64:ff9b::10.1.1.1", "private"),
            // 6to4
            ("2002:7f00:1::", "loopback"),
            ("2002:a00:1::1", "private"),
            ("2002:a9fe:a9fe::", "link-local"),
            // Teredo: client address inverted in the last 32 bits
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),
            ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),
            // ... or a local server address
            ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "private"),
        ] {
            assert_eq!(reason(ip), Some(class), "{ip}");
        }
        for ip in [
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
    }

    #[test]
    fn literal_hosts_are_checked_and_allow_listed_hosts_pass() {
        let none = AllowList::new(&[], "actions.allowed_hosts");
        let host = |u: &str| url::Url::parse(u).unwrap();
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest",
            "http://[fe80::1]/",
            "http://100.64.0.1/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[::127.0.0.1]/",
            "http://app.localhost/",
            "http://app.localhost./",
        ] {
            let url = host(url);
            assert!(
                check_host(&url.host().unwrap(), &none).is_err(),
                "{url} is refused"
            );
        }
        let url = host("https://crm.example.com/x");
        assert_eq!(check_host(&url.host().unwrap(), &none), Ok(()));
        let listed = AllowList::new(
            &["127.0.0.1".into(), "LOCALHOST".into(), "[::1]".into()],
            "actions.allowed_hosts",
        );
        for url in [
            "http://127.0.0.1:9/",
            "http://[0::1]/",
            "http://localhost./",
        ] {
            let url = host(url);
            assert_eq!(check_host(&url.host().unwrap(), &listed), Ok(()), "{url}");
        }
        // A listed address does not allow its other spellings.
        let url = host("http://[::ffff:127.0.0.1]/");
        let refused = check_host(&url.host().unwrap(), &listed).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "host '::ffff:127.0.0.1' is a loopback address; list it in actions.allowed_hosts to allow it"
        );
        assert!(refused.is_permanent());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_unless_listed() {
        let none = AllowList::new(&[], "actions.allowed_hosts");
        for name in ["localhost", "localhost."] {
            let refused = resolve(name, 25, &none).await.unwrap_err();
            assert!(
                matches!(
                    refused,
                    GuardError::ResolvesLocal {
                        class: "loopback",
                        ..
                    }
                ),
                "{name}: {refused}"
            );
        }
        let listed = AllowList::new(&["localhost".into()], "actions.allowed_hosts");
        let addresses = resolve("localhost.", 25, &listed).await.unwrap();
        assert!(
            addresses
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 25)
        );
    }
}
