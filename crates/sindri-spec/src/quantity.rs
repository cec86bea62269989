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

    /// The size as a Kubernetes quantity (`2Gi`, `512Mi`, or bytes).
    pub fn to_k8s_quantity(self) -> String {
        for (suffix, unit) in [
            ("Ti", 1u64 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return format!("{}{suffix}", self.0 / unit);
            }
        }
        self.0.to_string()
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
