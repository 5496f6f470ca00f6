//! Where webhooks may go: public http(s) destinations only.
//!
//! A company's endpoint URL is chosen by its admin, and the gateway usually runs next to
//! things that must not be reachable from the Internet (databases, metadata services,
//! admin consoles). So loopback, private, link-local and other special-purpose addresses
//! are refused — IPv4 and IPv6, including IPv4 addresses embedded in IPv6 ones — at
//! registration *and on every delivery*, after DNS resolution: a name that resolved to a
//! public address yesterday may resolve to 127.0.0.1 today. [`PublicResolver`] is the DNS
//! resolver of the delivery client; IP literals in URLs never reach a resolver, so
//! [`check_literal`] covers them. `GATEWAY_WEBHOOKS_ALLOW_PRIVATE=true` lifts the rule
//! (tests, or a gateway whose receivers live on a private network).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// Whether an address is a public unicast address a webhook may be sent to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()                              // 0.0.0.0
        || a == 0                                      // 0.0.0.0/8 "this network"
        || ip.is_loopback()                            // 127.0.0.0/8
        || ip.is_private()                             // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()                          // 169.254/16 (cloud metadata)
        || (a == 100 && (64..128).contains(&b))        // 100.64/10 carrier-grade NAT
        || (a == 192 && b == 0 && c == 0)              // 192.0.0/24 protocol assignments
        || ip.is_documentation()                       // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (a == 198 && (b == 18 || b == 19))          // 198.18/15 benchmarking
        || ip.is_multicast()                           // 224/4
        || a >= 240) // 240/4 reserved, 255.255.255.255 broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let first = ip.segments()[0];
    !(ip.is_unspecified()                         // ::
        || ip.is_loopback()                       // ::1
        || ip.is_multicast()                      // ff00::/8
        || ip.is_unique_local()                   // fc00::/7
        || ip.is_unicast_link_local()             // fe80::/10
        || (first & 0xffc0) == 0xfec0             // fec0::/10 site-local (deprecated)
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // 2001:db8::/32 documentation
        || (first == 0x2001 && ip.segments()[1] == 0) // 2001::/32 Teredo (tunnels to any IPv4)
        || (first == 0x0100 && ip.segments()[1..4] == [0, 0, 0]) // 100::/64 discard
        || first == 0) // the rest of ::/16: reserved
}

/// The IPv4 address inside an IPv6 one that stands for it: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    None
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Not a URL the gateway can send to.
    #[error("{0}")]
    Invalid(&'static str),
    /// The host is, or resolves to, an address that is not public.
    #[error("{host} is not a public address ({ip}); webhooks go to public http(s) destinations only")]
    NotPublic { host: String, ip: IpAddr },
    /// The host name does not resolve.
    #[error("{host} does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
}

/// Longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2000;

/// Parses an endpoint URL: absolute `http` or `https`, with a host, no user name or
/// password (they would be sent in the clear in logs and the API) and no fragment.
pub fn parse_url(text: &str) -> Result<Url, DestinationError> {
    if text.len() > MAX_URL_LEN {
        return Err(DestinationError::Invalid("must be at most 2000 characters"));
    }
    let url = Url::parse(text.trim()).map_err(|_| DestinationError::Invalid("must be an absolute http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DestinationError::Invalid("must be an http or https URL"));
    }
    if url.host().is_none() {
        return Err(DestinationError::Invalid("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DestinationError::Invalid("may not contain a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(DestinationError::Invalid("may not contain a #fragment"));
    }
    Ok(url)
}

/// Refuses a URL whose host is a non-public IP literal (names are left to the resolver).
pub fn check_literal(url: &Url) -> Result<(), DestinationError> {
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    if is_public(ip) { Ok(()) } else { Err(DestinationError::NotPublic { host: ip.to_string(), ip }) }
}

/// Checks a destination at registration: an IP literal must be public, and a name must
/// resolve, to public addresses only.
pub async fn check_destination(url: &Url) -> Result<(), DestinationError> {
    check_literal(url)?;
    let Some(Host::Domain(name)) = url.host() else { return Ok(()) };
    let addrs = lookup(name).await?;
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(private) => Err(DestinationError::NotPublic { host: name.to_owned(), ip: private.ip() }),
        None => Ok(()),
    }
}

async fn lookup(name: &str) -> Result<Vec<SocketAddr>, DestinationError> {
    let unresolvable = |reason: String| DestinationError::Unresolvable { host: name.to_owned(), reason };
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((name, 0)).await.map_err(|e| unresolvable(e.to_string()))?.collect();
    if addrs.is_empty() {
        return Err(unresolvable("no addresses".to_owned()));
    }
    Ok(addrs)
}

/// The delivery client's DNS resolver: the system's answer with every non-public address
/// removed, and an error (naming the first refused address) when nothing public is left.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = lookup(&name).await?;
            let (public, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
                addrs.into_iter().partition(|a| is_public(a.ip()));
            if public.is_empty() {
                let ip = refused[0].ip();
                return Err(Box::new(DestinationError::NotPublic { host: name, ip })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public(text.parse().unwrap())
    }

    #[test]
    fn public_ipv4_addresses_are_allowed() {
        for ip in ["8.8.8.8", "1.1.1.1", "93.184.215.14", "100.63.255.255", "100.128.0.1", "172.32.0.1", "198.20.0.1"] {
            assert!(public(ip), "{ip}");
        }
    }

    #[test]
    fn loopback_private_link_local_and_reserved_ipv4_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "203.0.113.7",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!public(ip), "{ip}");
        }
    }

    #[test]
    fn public_ipv6_addresses_are_allowed() {
        for ip in ["2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "2002:808:808::1"] {
            assert!(public(ip), "{ip}");
        }
    }

    #[test]
    fn special_ipv6_addresses_and_embedded_private_ipv4_are_refused() {
        for ip in [
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "100::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(!public(ip), "{ip}");
        }
        assert!(public("::ffff:8.8.8.8"), "a mapped public address is public");
        assert!(public("64:ff9b::808:808"), "NAT64 of a public address is public");
    }

    #[test]
    fn urls_must_be_plain_absolute_http_or_https() {
        assert!(parse_url("https://hooks.example.com/gateway?x=1").is_ok());
        assert!(parse_url("http://hooks.example.com:8080/").is_ok());
        for (bad, why) in [
            ("ftp://example.com/", "must be an http or https URL"),
            ("/relative", "must be an absolute http(s) URL"),
            ("https://user:pw@example.com/", "may not contain a user name or password"),
            ("https://example.com/#top", "may not contain a #fragment"),
            ("file:///etc/passwd", "must be an http or https URL"),
        ] {
            assert_eq!(parse_url(bad).unwrap_err(), DestinationError::Invalid(why), "{bad}");
        }
        assert!(parse_url(&format!("https://example.com/{}", "a".repeat(2000))).is_err());
    }

    #[test]
    fn ip_literals_are_checked_without_dns() {
        let refused = |u: &str| check_literal(&parse_url(u).unwrap()).is_err();
        assert!(refused("http://127.0.0.1:9000/"));
        assert!(refused("http://[::1]/"));
        assert!(refused("http://[::ffff:7f00:1]/"));
        assert!(refused("http://169.254.169.254/latest/meta-data"));
        assert!(refused("http://2130706433/"), "a decimal IPv4 literal is still 127.0.0.1");
        assert!(!refused("https://8.8.8.8/"));
        assert!(!refused("https://hooks.example.com/"), "names are the resolver's job");
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_at_registration_and_by_the_resolver() {
        let url = parse_url("http://localhost:9/hook").unwrap();
        assert!(matches!(check_destination(&url).await, Err(DestinationError::NotPublic { .. })));
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = reqwest::dns::Resolve::resolve(&PublicResolver, name).await.err().unwrap();
        assert!(err.to_string().contains("not a public address"), "{err}");
    }
}
