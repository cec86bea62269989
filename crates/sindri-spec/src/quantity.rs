//! Typed quantities read from `sindri.yaml`: sizes, CPU counts, durations and ports.
//!
//! Each is parsed once, at load, from the forms a person would write (`2GiB`, `0.5`,
//! `90m`, `"8080:80/udp"`), and serialised back to one canonical form. Parse errors
//! say what was expected so the loader can show them next to the offending value.
//!
//! `build.rs` compiles this file too (see `model.rs`), so it may only use serde,
//! schemars, humantime and std.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes, written `2GiB`, `512MiB`, `10GB`, `1.5GiB` or a plain byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const UNITS: &[(&str, u64)] = &[
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("B", 1),
];

const SIZE_EXPECTED: &str =
    "a size such as `512MiB`, `2GiB` or `10GB` (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)";

impl ByteSize {
    /// Bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Whole mebibytes, rounded up (what most APIs take for memory).
    pub fn mib_ceil(self) -> u64 {
        self.0.div_ceil(1 << 20)
    }

    /// Whole gibibytes, rounded up (what most APIs take for disks).
    pub fn gib_ceil(self) -> u64 {
        self.0.div_ceil(1 << 30)
    }

    /// The size as a Kubernetes quantity, in the canonical form an API server writes
    /// back (`2Gi`, `1536Mi`, `300M`, `1500`), so what sindri sends compares equal to
    /// what it later reads. See [`k8s_decimal_quantity`] for why that matters.
    pub fn to_k8s_quantity(self) -> String {
        // Both forms are kept as they are by the server (a binary suffix only for whole
        // multiples of 1 Ki); the shorter reads better: `10G` rather than `9765625Ki`.
        let decimal = k8s_decimal_quantity(u128::from(self.0), 0);
        if self.0 >= 1024 && self.0.is_multiple_of(1024) {
            let (mut n, mut i) = (self.0, 0);
            while n.is_multiple_of(1024) && i + 1 < K8S_BINARY_SUFFIXES.len() {
                n /= 1024;
                i += 1;
            }
            let binary = format!("{n}{}", K8S_BINARY_SUFFIXES[i]);
            if binary.len() <= decimal.len() {
                return binary;
            }
        }
        decimal
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(format!("found an empty string; expected {SIZE_EXPECTED}"));
        }
        if t.starts_with('-') {
            return Err(format!(
                "found `{s}`, a negative size; expected {SIZE_EXPECTED}"
            ));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim();
        let mult = if unit.is_empty() {
            1
        } else {
            // Exact case first so `M` (mega) and `Mi` (mebi) stay distinct; then any case.
            UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .or_else(|| UNITS.iter().find(|(u, _)| u.eq_ignore_ascii_case(unit)))
                .map(|(_, m)| *m)
                .ok_or_else(|| format!("found unit `{unit}` in `{s}`; expected {SIZE_EXPECTED}"))?
        };
        let value: f64 = num
            .parse()
            .map_err(|_| format!("found `{s}`; expected {SIZE_EXPECTED}"))?;
        let bytes = value * mult as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 {
            return Err(format!(
                "found `{s}`, which is too large; expected {SIZE_EXPECTED}"
            ));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (suffix, unit) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{}{suffix}", self.0 / unit);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(SIZE_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| {
                    E::custom(format!(
                        "found {v}, a negative size; expected {SIZE_EXPECTED}"
                    ))
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
                if v < 0.0 || !v.is_finite() {
                    return Err(E::custom(format!("found {v}; expected {SIZE_EXPECTED}")));
                }
                Ok(ByteSize(v.round() as u64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: `512MiB`, `2GiB`, `10GB`, or a byte count.",
            "anyOf": [
                {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([KkMmGgTt][Ii]?[Bb]?|[Bb])?\s*$"},
                {"type": "integer", "minimum": 0}
            ]
        })
    }
}

/// A number of CPU cores, greater than zero (`2`, `0.5`, or `"500m"` as Kubernetes writes it).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Cpus(f64);

const CPUS_EXPECTED: &str = "a number of CPU cores greater than 0, e.g. `2` or `0.5`";

impl Cpus {
    /// Builds a CPU count, refusing zero, negative and non-finite values.
    pub fn new(v: f64) -> Result<Cpus, String> {
        if v.is_finite() && v > 0.0 {
            Ok(Cpus(v))
        } else {
            Err(format!("found {v}; expected {CPUS_EXPECTED}"))
        }
    }

    /// Cores as a float.
    pub fn get(self) -> f64 {
        self.0
    }

    /// Thousandths of a core (Kubernetes millicores), rounded up.
    pub fn millis(self) -> u64 {
        (self.0 * 1000.0).ceil() as u64
    }

    /// The count as a Kubernetes CPU quantity in the API server's canonical form:
    /// whole cores as `2`, anything else in millicores (`500m`, `1500m`).
    pub fn to_k8s_quantity(self) -> String {
        k8s_decimal_quantity(u128::from(self.millis()), -3)
    }

    /// Billionths of a core (Docker's NanoCPUs).
    pub fn nanos(self) -> i64 {
        (self.0 * 1e9).round() as i64
    }

    /// Whole cores, rounded up (what VM sizes use).
    pub fn whole(self) -> u32 {
        self.0.ceil() as u32
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 {
            s.serialize_u64(self.0 as u64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cpus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(CPUS_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cpus, E> {
                Cpus::new(v as f64).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cpus, E> {
                Cpus::new(v as f64).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cpus, E> {
                Cpus::new(v).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cpus, E> {
                let t = v.trim();
                let parsed = match t.strip_suffix('m') {
                    Some(m) => m.parse::<f64>().map(|m| m / 1000.0),
                    None => t.parse::<f64>(),
                };
                match parsed {
                    Ok(n) => Cpus::new(n).map_err(E::custom),
                    Err(_) => Err(E::custom(format!("found `{v}`; expected {CPUS_EXPECTED}"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Cpus {
    fn schema_name() -> Cow<'static, str> {
        "Cpus".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "CPU cores, greater than 0: `2`, `0.5` or `\"500m\"`.",
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?m?\s*$"}
            ]
        })
    }
}

/// Suffixes of Kubernetes quantities for powers of ten, as the API server writes them.
const K8S_DECIMAL_SUFFIXES: [(i32, &str); 10] = [
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];

/// Suffixes of Kubernetes quantities for powers of 1024.
const K8S_BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// `mantissa × 10^exp10` as a Kubernetes quantity with decimal suffixes, in the
/// canonical form of the API server (apimachinery's `Quantity.String`): trailing zeros
/// go into the exponent, the exponent is lowered to a multiple of three and named by
/// its suffix (`300000000` is `300M`, `1500` stays `1500`, `2000` is `2k`, 0.5 is
/// `500m`).
///
/// The server stores and returns quantities in this form whatever form it was sent,
/// so a manifest written in any other form never compares equal to the live object.
pub fn k8s_decimal_quantity(mantissa: u128, exp10: i32) -> String {
    if mantissa == 0 {
        return "0".to_string();
    }
    let (mut m, mut e) = (mantissa, exp10);
    while m.is_multiple_of(10) {
        m /= 10;
        e += 1;
    }
    // `%` truncates like Go's, so negative exponents round down to a multiple of 3.
    match e % 3 {
        1 | -2 => {
            m *= 10;
            e -= 1;
        }
        2 | -1 => {
            m *= 100;
            e -= 2;
        }
        _ => {}
    }
    match K8S_DECIMAL_SUFFIXES.iter().find(|(x, _)| *x == e) {
        Some((_, suffix)) => format!("{m}{suffix}"),
        None => format!("{m}e{e}"),
    }
}

/// The value of a Kubernetes quantity (`2Gi`, `300M`, `500m`, `1e3`, `0.5`) in
/// billionths, rounded up to a billionth as the API server rounds it. Two quantities
/// are the same amount when their values are equal, however each was written.
pub fn parse_k8s_quantity(s: &str) -> Result<i128, String> {
    let bad = || {
        format!("`{s}` is not a Kubernetes quantity (expected e.g. `2Gi`, `500M`, `250m` or `1.5`)")
    };
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if number.is_empty() || fraction.contains('.') || whole.len() + fraction.len() > 30 {
        return Err(bad());
    }
    let digits: i128 = format!("0{whole}{fraction}").parse().map_err(|_| bad())?;
    // value = digits × 2^bin × 10^dec / 10^len(fraction)
    let (bin, dec): (u32, i32) = if let Some(i) = K8S_BINARY_SUFFIXES
        .iter()
        .skip(1)
        .position(|x| *x == suffix)
    {
        (10 * (i as u32 + 1), 0)
    } else if let Some((e, _)) = K8S_DECIMAL_SUFFIXES.iter().find(|(_, x)| *x == suffix) {
        (0, *e)
    } else if let Some(exp) = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
    {
        let e: i32 = exp.parse().map_err(|_| bad())?;
        if !(-40..=40).contains(&e) {
            return Err(bad());
        }
        (0, e)
    } else {
        return Err(bad());
    };
    // In billionths: multiply by 10^(9 + dec - len(fraction)), dividing (rounding up)
    // when that power is negative.
    let shift = 9 + dec - fraction.len() as i32;
    let scaled = digits.checked_mul(1i128 << bin).ok_or_else(bad)?;
    let value = if shift >= 0 {
        10i128
            .checked_pow(shift as u32)
            .and_then(|p| scaled.checked_mul(p))
            .ok_or_else(bad)?
    } else {
        match 10i128.checked_pow(shift.unsigned_abs()) {
            Some(p) => scaled.div_ceil_positive(p),
            None => i128::from(scaled > 0),
        }
    };
    Ok(if negative { -value } else { value })
}

/// Division rounding up, for non-negative values.
trait DivCeilPositive {
    fn div_ceil_positive(self, d: Self) -> Self;
}

impl DivCeilPositive for i128 {
    fn div_ceil_positive(self, d: i128) -> i128 {
        self / d + i128::from(self % d != 0)
    }
}

/// A duration written as `90s`, `30m`, `12h`, `1h 30m` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationValue(pub Duration);

const DURATION_EXPECTED: &str = "a duration such as `90s`, `30m`, `12h` or `1h 30m`";

impl DurationValue {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for DurationValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for DurationValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationValue, E> {
                Ok(DurationValue(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationValue, E> {
                u64::try_from(v)
                    .map(|s| DurationValue(Duration::from_secs(s)))
                    .map_err(|_| {
                        E::custom(format!(
                            "found {v}, a negative duration; expected {DURATION_EXPECTED}"
                        ))
                    })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationValue, E> {
                humantime::parse_duration(v.trim())
                    .map(DurationValue)
                    .map_err(|e| {
                        E::custom(format!("found `{v}` ({e}); expected {DURATION_EXPECTED}"))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for DurationValue {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: `90s`, `30m`, `12h`, `1h 30m`, or seconds.",
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "integer", "minimum": 0}
            ]
        })
    }
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A published port: the container's port, and the host (or public) port it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// Port inside the environment.
    pub container: u16,
    /// Port on the host or public side; defaults to `container`.
    pub host: u16,
    /// Protocol.
    pub protocol: Protocol,
}

const PORT_EXPECTED: &str = "a port such as `8080`, `\"8080:80\"`, `\"5353:53/udp\"` or `{container: 80, host: 8080}` (ports 1-65535)";

fn parse_port_number(s: &str, whole: &str) -> Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(n) => Err(format!(
            "found port {n} in `{whole}`; expected {PORT_EXPECTED}"
        )),
        Err(_) => Err(format!("found `{whole}`; expected {PORT_EXPECTED}")),
    }
}

impl FromStr for PortMapping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ports, protocol) = match s.rsplit_once('/') {
            Some((p, "tcp")) => (p, Protocol::Tcp),
            Some((p, "udp")) => (p, Protocol::Udp),
            Some((_, other)) => {
                return Err(format!(
                    "found protocol `{other}` in `{s}`; expected `tcp` or `udp`"
                ));
            }
            None => (s, Protocol::Tcp),
        };
        let (host, container) = match ports.split_once(':') {
            Some((h, c)) => (parse_port_number(h, s)?, parse_port_number(c, s)?),
            None => {
                let p = parse_port_number(ports, s)?;
                (p, p)
            }
        };
        Ok(PortMapping {
            container,
            host,
            protocol,
        })
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.container)?;
        if self.protocol == Protocol::Udp {
            f.write_str("/udp")?;
        }
        Ok(())
    }
}

impl Serialize for PortMapping {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortObject {
    container: u32,
    #[serde(default)]
    host: Option<u32>,
    #[serde(default)]
    protocol: Protocol,
}

impl<'de> Deserialize<'de> for PortMapping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PortMapping;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(PORT_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortMapping, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortMapping, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortMapping, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<PortMapping, A::Error> {
                let o = PortObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let whole = match o.host {
                    Some(h) => format!("{{container: {}, host: {h}}}", o.container),
                    None => format!("{{container: {}}}", o.container),
                };
                let container = parse_port_number(&o.container.to_string(), &whole)
                    .map_err(de::Error::custom)?;
                let host = match o.host {
                    Some(h) => {
                        parse_port_number(&h.to_string(), &whole).map_err(de::Error::custom)?
                    }
                    None => container,
                };
                Ok(PortMapping {
                    container,
                    host,
                    protocol: o.protocol,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for PortMapping {
    fn schema_name() -> Cow<'static, str> {
        "PortMapping".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A published port: `8080`, `\"8080:80\"` (host:container), `\"5353:53/udp\"`, or an object.",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": r"^[0-9]{1,5}(:[0-9]{1,5})?(/(tcp|udp))?$"},
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["container"],
                    "properties": {
                        "container": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "host": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "protocol": {"type": "string", "enum": ["tcp", "udp"]}
                    }
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_the_forms_people_write() {
        assert_eq!("2GiB".parse::<ByteSize>().unwrap().bytes(), 2 << 30);
        assert_eq!("512MiB".parse::<ByteSize>().unwrap().bytes(), 512 << 20);
        assert_eq!("10GB".parse::<ByteSize>().unwrap().bytes(), 10_000_000_000);
        assert_eq!("1.5GiB".parse::<ByteSize>().unwrap().bytes(), 3 << 29);
        assert_eq!("2Gi".parse::<ByteSize>().unwrap().bytes(), 2 << 30);
        assert_eq!("4096".parse::<ByteSize>().unwrap().bytes(), 4096);
        assert!(
            "-1GiB"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("negative")
        );
        assert!(
            "2 parsecs"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("parsecs")
        );
        assert!("".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(2 << 30).to_string(), "2GiB");
        assert_eq!(ByteSize(2 << 30).to_k8s_quantity(), "2Gi");
        assert_eq!(ByteSize(1500).to_k8s_quantity(), "1500");
    }

    /// What apimachinery's `Quantity.String` writes back for each size (cases from
    /// its quantity_test.go and worked through its canonicalisation rules).
    #[test]
    fn sizes_become_the_quantities_an_api_server_writes_back() {
        for (size, canonical) in [
            ("300MB", "300M"),
            ("10GB", "10G"),
            ("1.5GB", "1500M"),
            ("2KB", "2k"),
            ("1500", "1500"),
            ("1000", "1k"),
            ("123456789", "123456789"),
            ("1GiB", "1Gi"),
            ("1024MiB", "1Gi"),
            ("1.5GiB", "1536Mi"),
            ("300MiB", "300Mi"),
            ("1001GiB", "1001Gi"),
            ("1TiB", "1Ti"),
            ("1025", "1025"),
            ("1024", "1Ki"),
            ("2048000", "2048k"),
            ("512", "512"),
            ("0", "0"),
        ] {
            let b: ByteSize = size.parse().unwrap();
            assert_eq!(b.to_k8s_quantity(), canonical, "{size}");
            assert_eq!(
                parse_k8s_quantity(canonical).unwrap(),
                i128::from(b.bytes()) * 1_000_000_000,
                "{canonical} is {size}"
            );
        }
        assert_eq!(ByteSize(1 << 50).to_k8s_quantity(), "1Pi");
        assert_eq!(ByteSize(3 << 60).to_k8s_quantity(), "3Ei");
    }

    #[test]
    fn cpus_become_canonical_quantities() {
        for (cores, canonical) in [
            (0.5, "500m"),
            (0.25, "250m"),
            (1.0, "1"),
            (1.5, "1500m"),
            (2.5, "2500m"),
            (16.0, "16"),
            (0.001, "1m"),
            (1000.0, "1k"),
        ] {
            assert_eq!(
                Cpus::new(cores).unwrap().to_k8s_quantity(),
                canonical,
                "{cores}"
            );
        }
    }

    #[test]
    fn decimal_quantities_follow_the_api_servers_rules() {
        for (m, e, canonical) in [
            (1u128, 9, "1G"),
            (1000, 6, "1G"),
            (1, -3, "1m"),
            (80, -3, "80m"),
            (1080, -3, "1080m"),
            (108, -2, "1080m"),
            (300, 6, "300M"),
            (1, 18, "1E"),
            (1, 21, "1e21"),
            (3, 3, "3k"),
            (1, -9, "1n"),
            (1080, -6, "1080u"),
        ] {
            assert_eq!(k8s_decimal_quantity(m, e), canonical, "{m}e{e}");
        }
    }

    #[test]
    fn quantities_written_differently_have_the_same_value() {
        let v = |s: &str| parse_k8s_quantity(s).unwrap();
        assert_eq!(v("300000000"), v("300M"));
        assert_eq!(v("1024Mi"), v("1Gi"));
        assert_eq!(v("0.5"), v("500m"));
        assert_eq!(v("1e3"), v("1k"));
        assert_eq!(v("1.5Gi"), v("1536Mi"));
        assert_eq!(v(".001Ki"), v("1024m"));
        assert_eq!(v("-2k"), -v("2000"));
        assert_eq!(v("3.001n"), 4, "rounded up to a billionth");
        assert_ne!(v("1G"), v("1Gi"));
        for bad in [
            "", "1.1.M", "0.1mi", "aoeu", "1i", "-3.01e-", " 1", "1 ", "12MB",
        ] {
            assert!(parse_k8s_quantity(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports_parse_and_print() {
        let p: PortMapping = "8080:80/udp".parse().unwrap();
        assert_eq!((p.host, p.container, p.protocol), (8080, 80, Protocol::Udp));
        assert_eq!(p.to_string(), "8080:80/udp");
        let p: PortMapping = "3000".parse().unwrap();
        assert_eq!((p.host, p.container), (3000, 3000));
        assert!(
            "70000"
                .parse::<PortMapping>()
                .unwrap_err()
                .contains("70000")
        );
        assert!(
            "80/sctp"
                .parse::<PortMapping>()
                .unwrap_err()
                .contains("sctp")
        );
    }

    #[test]
    fn cpus_refuse_zero_and_negative() {
        assert!(Cpus::new(0.0).is_err());
        assert!(Cpus::new(-1.0).is_err());
        assert_eq!(Cpus::new(0.5).unwrap().millis(), 500);
        assert_eq!(Cpus::new(2.0).unwrap().nanos(), 2_000_000_000);
    }
}
