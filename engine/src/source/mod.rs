//! Log sources: how each raw record shape is recognised and mapped to the
//! UDM fields that rules read.
//!
//! Each source is a table, written the way Google SecOps' default parsers
//! map the same records. The reader turns the tables into raw JSON paths to
//! extract, so a raw record is never converted into a UDM document: only
//! the fields the loaded rules read are looked at.

mod azure_activity;
mod cloudtrail;
mod entra_audit;

/// A raw JSON path: a key per level. Keys may hold dots.
pub type RawPath = &'static [&'static str];

/// Where a UDM field's value comes from in a raw record.
#[derive(Clone, Copy, Debug)]
pub enum Src {
    /// The value, or every value, at a path.
    Path(RawPath),
    /// The values of the first path that has any.
    First(&'static [RawPath]),
    /// A fixed value.
    Const(&'static str),
    /// The IP address at a path, without a port; nothing when the value
    /// there is not an IP address.
    Ip(RawPath),
    /// The value at a path when it is not an IP address (a service name
    /// where an address is usually found).
    NotIp(RawPath),
    /// `.1` if the path has a value, `.2` otherwise.
    Presence(RawPath, &'static str, &'static str),
}

/// A test that a record has a shape.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// The path holds a string, or an array holding one.
    Str(RawPath),
    /// The path holds an object.
    Object(RawPath),
    /// The first of the paths that holds a string holds one of the values,
    /// compared without regard to ASCII case; with no values, any string.
    OneOf(&'static [RawPath], &'static [&'static str]),
}

/// A record shape the engine recognises.
#[derive(Debug)]
pub struct Source {
    /// A short stable name, used in docs and tests: `aws_cloudtrail`.
    pub id: &'static str,
    /// Every check must pass for a record to have this shape.
    pub detect: &'static [Check],
    /// UDM field to source. A UDM field not listed reads as missing.
    pub fields: &'static [(&'static str, Src)],
}

/// UDM events: `metadata` is an object at the top level. Every UDM field
/// is read at its own path.
pub static UDM: Source = Source { id: "udm", detect: &[Check::Object(&["metadata"])], fields: &[] };

/// The raw sources, in the order they are tried after UDM.
pub static RAW: [&Source; 4] = [
    &cloudtrail::CLOUDTRAIL,
    &entra_audit::ENTRA_AUDIT_DIAGNOSTIC,
    &entra_audit::ENTRA_AUDIT_GRAPH,
    &azure_activity::AZURE_ACTIVITY,
];

/// Every source, UDM first.
pub fn all() -> impl Iterator<Item = &'static Source> {
    std::iter::once(&UDM).chain(RAW.iter().copied())
}

/// Whether `s` is an IP address, perhaps with a port (`1.2.3.4:443`,
/// `[::1]:443`); returns the address part. Dotted quads with leading zeros,
/// as anonymisers write them, count as addresses.
pub fn ip_part(s: &str) -> Option<&str> {
    use std::net::IpAddr;
    if s.parse::<IpAddr>().is_ok() || is_padded_ipv4(s) {
        return Some(s);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, port) = rest.split_once(']')?;
        let port_ok = port.is_empty() || port.strip_prefix(':').is_some_and(is_port);
        return (port_ok && addr.parse::<std::net::Ipv6Addr>().is_ok()).then_some(addr);
    }
    let (addr, port) = s.rsplit_once(':')?;
    let v4 = addr.parse::<std::net::Ipv4Addr>().is_ok() || is_padded_ipv4(addr);
    (v4 && is_port(port)).then_some(addr)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_padded_ipv4(s: &str) -> bool {
    let mut parts = 0;
    for part in s.split('.') {
        parts += 1;
        let ok = (1..=3).contains(&part.len())
            && part.bytes().all(|b| b.is_ascii_digit())
            && part.parse::<u16>().is_ok_and(|n| n <= 255);
        if !ok {
            return false;
        }
    }
    parts == 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_part_accepts_addresses_with_ports_and_padding() {
        assert_eq!(ip_part("1.2.3.4"), Some("1.2.3.4"));
        assert_eq!(ip_part("010.001.002.003"), Some("010.001.002.003"));
        assert_eq!(ip_part("1.1.1.1:57484"), Some("1.1.1.1"));
        assert_eq!(ip_part("2001:db8::1"), Some("2001:db8::1"));
        assert_eq!(ip_part("[2001:db8::1]:443"), Some("2001:db8::1"));
        assert_eq!(ip_part("ec2.amazonaws.com"), None);
        assert_eq!(ip_part("AWS Internal"), None);
        assert_eq!(ip_part("1.2.3.256"), None);
        assert_eq!(ip_part(""), None);
    }
}
