//! Address allow-lists of the listeners (`riffle server --allow`, the "VPC"
//! of a self-hosted server): a connection from an address no range of its
//! listener's list contains is closed as soon as it is accepted, before a byte
//! is read. Ranges are CIDR blocks or single addresses, IPv4 and IPv6 (an
//! IPv4-mapped IPv6 peer is matched as its IPv4 address), parsed by IAM's
//! `aws:SourceIp` rules (`riffle_aws::iam::Cidr`).

use std::net::{IpAddr, SocketAddr};

use riffle_aws::iam::Cidr;

/// The ranges a listener takes connections from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowList {
    ranges: Vec<Cidr>,
    text: String,
}

impl AllowList {
    /// A comma-separated list: `10.0.0.0/8,192.168.1.7,::1`.
    pub fn parse(text: &str) -> Result<AllowList, String> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            ranges.push(Cidr::parse(item).ok_or_else(|| {
                format!("{item:?} is not an address range (e.g. 10.0.0.0/8, 192.168.1.7 or ::1)")
            })?);
        }
        if ranges.is_empty() {
            return Err(format!(
                "the allow-list {text:?} names no range: every connection would be refused"
            ));
        }
        Ok(AllowList {
            ranges,
            text: text.to_owned(),
        })
    }

    /// Whether a connection from `peer` is taken; one whose address is not
    /// known is not.
    pub fn allows(&self, peer: Option<SocketAddr>) -> bool {
        peer.is_some_and(|p| self.allows_ip(p.ip()))
    }

    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }
}

impl std::fmt::Display for AllowList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_single_addresses_of_both_families() {
        let list = AllowList::parse("10.0.0.0/8, 192.168.1.7,::1,2001:db8::/32").unwrap();
        let ok = |s: &str| list.allows_ip(s.parse().unwrap());
        assert!(ok("10.1.2.3"));
        assert!(!ok("11.0.0.1"));
        assert!(ok("192.168.1.7"));
        assert!(!ok("192.168.1.8"));
        assert!(ok("::1"));
        assert!(ok("2001:db8:1::5"));
        assert!(!ok("2001:db9::1"));
        // An IPv4 peer on a dual-stack socket.
        assert!(ok("::ffff:10.9.9.9"));
        assert!(!ok("127.0.0.1"));
        assert!(!list.allows(None));
        assert!(list.allows(Some("10.0.0.1:5".parse().unwrap())));
    }

    #[test]
    fn bad_lists_are_refused_with_the_offending_item() {
        let e = AllowList::parse("10.0.0.0/8,10.0.0.0/33").unwrap_err();
        assert!(e.contains("10.0.0.0/33"), "{e}");
        assert!(AllowList::parse("localhost").is_err());
        assert!(
            AllowList::parse(" , ")
                .unwrap_err()
                .contains("names no range")
        );
    }
}
