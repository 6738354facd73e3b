//! Where Arbiter may send requests of its own (webhooks). A webhook URL is
//! chosen by whoever holds an admin key, and an HTTP request from inside the
//! network is a classic way to reach what should not be reachable (cloud
//! metadata at 169.254.169.254, admin ports on localhost). So by default
//! Arbiter refuses addresses that are loopback, link-local, private,
//! shared, multicast or unspecified, both when a webhook is registered and
//! again at connect time, because DNS answers can change in between.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("`{s}` is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("`{s}`: bad prefix length"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

/// Which destinations outbound requests may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Allow every address, private ones included (`--webhook-allow-private`).
    pub allow_private: bool,
    /// Networks allowed although private (the config file's `webhook_allow`).
    pub allow_networks: Vec<IpNet>,
    /// Host names allowed whatever they resolve to.
    pub allow_hosts: Vec<String>,
}

/// Why an address is refused, or `None` for a public one.
pub fn restricted(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| embedded_v4(v6)) {
            Some(v4) => restricted_v4(v4).or_else(|| restricted_v6(v6)),
            None => restricted_v6(v6),
        },
    }
}

/// The IPv4 address an IPv6 one carries and reaches, in the forms routers and
/// translators honour: IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`
/// and the local-use `64:ff9b:1::/48`), 6to4 (`2002:aabb:ccdd::/48`) and
/// Teredo (`2001::/32`, the client address inverted in the last 32 bits).
/// A webhook to `[64:ff9b::a9fe:a9fe]` is a webhook to 169.254.169.254.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match seg {
        // ::a.b.c.d (not :: and ::1, which are classified as IPv6)
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Some(low(seg[6], seg[7])),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        [0x2001, 0, ..] => Some(low(!seg[6], !seg[7])),
        _ => None,
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_private() {
        Some("private")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some("multicast or broadcast")
    } else {
        None
    }
}

fn restricted_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("private (unique local)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else {
        None
    }
}

impl OutboundPolicy {
    /// Whether a request to `host` (as written in the URL) at `ip` is allowed;
    /// the error says why not, in words an admin can act on.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        if self.allow_private || self.allow_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Ok(());
        }
        match restricted(ip) {
            Some(_) if self.allow_networks.iter().any(|n| n.contains(ip)) => Ok(()),
            Some(kind) => Err(format!(
                "{host} resolves to {ip}, a {kind} address; Arbiter does not send webhooks into private networks \
                 unless allowed (`serve --webhook-allow-private`, or `webhook_allow` in the config file)"
            )),
            None => Ok(()),
        }
    }

    /// Check a URL before it is stored: its host must resolve, and every
    /// address it resolves to must be allowed.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
        let host = parsed.host_str().ok_or("the URL has no host")?.trim_start_matches('[').trim_end_matches(']');
        let port = parsed.port_or_known_default().unwrap_or(443);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.check(host, ip);
        }
        if self.allow_private || self.allow_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Ok(());
        }
        let addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
        if addrs.is_empty() {
            return Err(format!("{host} does not resolve to any address"));
        }
        addrs.iter().try_for_each(|a| self.check(host, a.ip()))
    }
}

/// A DNS resolver for the webhook client that drops refused addresses, so a
/// name that changed to point inside the network after registration is still
/// refused at connect time.
pub struct CheckedResolver(pub Arc<OutboundPolicy>);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let ok: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| match policy.check(&host, a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .collect();
            if ok.is_empty() {
                let why = refused.unwrap_or_else(|| format!("{host} does not resolve to any address"));
                return Err(why.into());
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for (ip, want) in [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.20.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("link-local")),
            ("0.0.0.0", Some("unspecified")),
            ("100.64.0.1", Some("shared (carrier-grade NAT)")),
            ("8.8.8.8", None),
            ("::1", Some("loopback")),
            ("::", Some("unspecified")),
            ("fe80::1", Some("link-local")),
            ("fd12::1", Some("private (unique local)")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("2001:4860::8888", None),
            // the trust review's forms: IPv4-compatible, NAT64 and 6to4 spellings of loopback, metadata and 10/8
            ("::7f00:1", Some("loopback")),
            ("64:ff9b::7f00:1", Some("loopback")),
            ("64:ff9b::a9fe:a9fe", Some("link-local")),
            ("64:ff9b::a00:1", Some("private")),
            ("2002:7f00:1::", Some("loopback")),
            ("2002:a9fe:a9fe::", Some("link-local")),
            ("64:ff9b:1::a00:1", Some("private")),
            // Teredo: the client address is stored inverted (here 127.0.0.1)
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Some("loopback")),
            // and their public counterparts stay allowed
            ("64:ff9b::808:808", None),
            ("2002:808:808::1", None),
        ] {
            assert_eq!(restricted(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn allow_lists_open_exactly_what_they_name() {
        let p = OutboundPolicy {
            allow_private: false,
            allow_networks: vec!["10.20.0.0/16".parse().unwrap()],
            allow_hosts: vec!["hooks.internal".into()],
        };
        assert!(p.check("x", "10.20.3.4".parse().unwrap()).is_ok());
        assert!(p.check("x", "10.21.3.4".parse().unwrap()).unwrap_err().contains("private"));
        assert!(p.check("hooks.internal", "10.99.0.1".parse().unwrap()).is_ok());
        assert!(p.check("x", "93.184.216.34".parse().unwrap()).is_ok());
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("fd00::/8".parse::<IpNet>().unwrap().contains("fd12::1".parse().unwrap()));
    }

    #[tokio::test]
    async fn urls_are_checked_before_they_are_stored() {
        let p = OutboundPolicy::default();
        assert!(p.check_url("http://127.0.0.1:9/hook").await.unwrap_err().contains("loopback"));
        assert!(p.check_url("http://[::1]:9/hook").await.unwrap_err().contains("loopback"));
        assert!(p.check_url("http://169.254.169.254/latest/meta-data").await.unwrap_err().contains("link-local"));
        assert!(p.check_url("http://localhost:9/hook").await.unwrap_err().contains("loopback"));
        let open = OutboundPolicy { allow_private: true, ..Default::default() };
        assert!(open.check_url("http://127.0.0.1:9/hook").await.is_ok());
    }
}
