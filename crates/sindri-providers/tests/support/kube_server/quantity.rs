//! Resource quantities as a real API server treats them: parsed on the way in and
//! stored and returned in apimachinery's canonical form (`Quantity.String`), so
//! `300000000` comes back as `300M`, `0.5` as `500m`, `1024Mi` as `1Gi`.
//!
//! Written from apimachinery's `ParseQuantity` and `CanonicalizeBytes` (the format
//! the value was written in is kept: binary suffixes stay binary when the value is a
//! whole number of at least 1024, exponents stay exponents) independently of
//! sindri's own code, so the tests compare sindri against the rules, not against
//! itself. Values are held in billionths (the server rounds up to a billionth).

use serde_json::Value;

/// The pattern the API's OpenAPI schema gives for quantities.
pub const PATTERN: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

const DECIMAL: [(&str, i32); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];
const BINARY: [(&str, u32); 6] = [
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];
const NANO: i128 = 1_000_000_000;

fn wrong(s: &str) -> String {
    format!("quantities must match the regular expression '{PATTERN}' (got {s:?})")
}

/// Parses a quantity: (value in billionths, the format it was written in).
fn parse(s: &str) -> Result<(i128, Format), String> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(end);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if number.is_empty() || frac.contains('.') || whole.len() + frac.len() > 28 {
        return Err(wrong(s));
    }
    let digits: i128 = format!("0{whole}{frac}").parse().map_err(|_| wrong(s))?;
    let (format, pow2, pow10) = if let Some((_, e)) = DECIMAL.iter().find(|(x, _)| *x == suffix) {
        (Format::DecimalSi, 0, *e)
    } else if let Some((_, e)) = BINARY.iter().find(|(x, _)| *x == suffix) {
        (Format::BinarySi, *e, 0)
    } else if suffix.len() > 1 && (suffix.starts_with('e') || suffix.starts_with('E')) {
        let e: i32 = suffix[1..].parse().map_err(|_| wrong(s))?;
        (Format::DecimalExponent, 0, e)
    } else {
        return Err(wrong(s));
    };
    // digits × 2^pow2 × 10^(pow10 - len(frac)) in billionths, rounded up.
    let shift = 9 + pow10 - frac.len() as i32;
    let scaled = digits.checked_mul(1i128 << pow2).ok_or_else(|| wrong(s))?;
    let nanos = if shift >= 0 {
        scaled
            .checked_mul(10i128.checked_pow(shift as u32).ok_or_else(|| wrong(s))?)
            .ok_or_else(|| wrong(s))?
    } else {
        let d = 10i128
            .checked_pow(shift.unsigned_abs())
            .unwrap_or(i128::MAX);
        scaled / d + i128::from(scaled % d != 0)
    };
    Ok((if negative { -nanos } else { nanos }, format))
}

/// The canonical form of a quantity, as the API server writes it back.
pub fn canonical(s: &str) -> Result<String, String> {
    let (nanos, mut format) = parse(s)?;
    if nanos == 0 {
        return Ok("0".into());
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.abs();
    if format == Format::BinarySi && (abs < 1024 * NANO || abs % NANO != 0) {
        format = Format::DecimalSi;
    }
    if format == Format::BinarySi {
        let (mut v, mut k) = (abs / NANO, 0usize);
        while v % 1024 == 0 {
            v /= 1024;
            k += 1;
        }
        let suffix = match k {
            0 => "",
            k => BINARY[k - 1].0,
        };
        return Ok(format!("{sign}{v}{suffix}"));
    }
    let (mut m, mut e) = (abs, -9i32);
    while m % 10 == 0 {
        m /= 10;
        e += 1;
    }
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
    let suffix = match (format, DECIMAL.iter().find(|(_, x)| *x == e)) {
        (Format::DecimalExponent, _) if e == 0 => String::new(),
        (Format::DecimalExponent, _) | (_, None) => format!("e{e}"),
        (_, Some((x, _))) => x.to_string(),
    };
    Ok(format!("{sign}{m}{suffix}"))
}

/// The quantity fields of an object of `kind`, as (path, JSON pointer): container
/// resources of a pod or pod template, claim storage, `emptyDir` size limits.
pub fn fields(kind: &str, obj: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let pod_spec = match kind {
        "Pod" => Some("/spec"),
        "StatefulSet" | "Deployment" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some("/spec/template/spec")
        }
        _ => None,
    };
    let resources = |base: &str, label: &str, out: &mut Vec<(String, String)>| {
        for list in ["requests", "limits"] {
            let p = format!("{base}/{list}");
            for k in obj
                .pointer(&p)
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                out.push((
                    format!("{label}.{list}[{k}]"),
                    format!("{p}/{}", k.replace('~', "~0").replace('/', "~1")),
                ));
            }
        }
    };
    if let Some(spec) = pod_spec {
        let label = spec.trim_start_matches('/').replace('/', ".");
        for list in ["containers", "initContainers"] {
            let n = obj
                .pointer(&format!("{spec}/{list}"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..n {
                resources(
                    &format!("{spec}/{list}/{i}/resources"),
                    &format!("{label}.{list}[{i}].resources"),
                    &mut out,
                );
            }
        }
        let n = obj
            .pointer(&format!("{spec}/volumes"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..n {
            let p = format!("{spec}/volumes/{i}/emptyDir/sizeLimit");
            if obj.pointer(&p).is_some() {
                out.push((format!("{label}.volumes[{i}].emptyDir.sizeLimit"), p));
            }
        }
    }
    if kind == "StatefulSet" {
        let n = obj
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..n {
            resources(
                &format!("/spec/volumeClaimTemplates/{i}/spec/resources"),
                &format!("spec.volumeClaimTemplates[{i}].spec.resources"),
                &mut out,
            );
        }
    }
    if kind == "PersistentVolumeClaim" {
        resources("/spec/resources", "spec.resources", &mut out);
    }
    out
}

/// Rewrites every quantity of `obj` in canonical form, as the server stores it; an
/// invalid one is refused with the server's message and the field.
pub fn canonicalize(kind: &str, obj: &mut Value) -> Result<(), (String, String)> {
    for (path, pointer) in fields(kind, obj) {
        let Some(v) = obj.pointer_mut(&pointer) else {
            continue;
        };
        let text = match &*v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err((path, wrong(&other.to_string()))),
        };
        *v = Value::String(canonical(&text).map_err(|m| (path.clone(), m))?);
    }
    Ok(())
}

/// The cases of apimachinery's quantity_test.go (`TestQuantityParseEmit`,
/// `TestQuantityString`'s alternates) this canonicaliser must reproduce.
const APIMACHINERY_CASES: [(&str, &str); 24] = [
    ("1Ki", "1Ki"),
    ("1024Mi", "1Gi"),
    ("1000M", "1G"),
    (".001Ki", "1024m"),
    (".000001Ki", "1024u"),
    (".000000001Ki", "1024n"),
    (".000000000001Ki", "2n"),
    ("307200Ki", "300Mi"),
    ("1025024Mi", "1001Gi"),
    ("1024Gi", "1Ti"),
    ("0.5", "500m"),
    ("1000M", "1G"),
    ("0.001T", "1G"),
    ("1000u", "1m"),
    ("1.08", "1080m"),
    ("1080000000n", "1080m"),
    ("1000E", "1e21"),
    (".001e12", "1e9"),
    ("0.001e0", "1e-3"),
    ("1000e-12", "1e-9"),
    ("00", "0"),
    ("300000000", "300M"),
    ("1500", "1500"),
    ("2000", "2k"),
];

#[test]
fn the_test_servers_canonical_forms_are_apimachinerys() {
    for (input, expected) in APIMACHINERY_CASES {
        assert_eq!(canonical(input).as_deref(), Ok(expected), "{input}");
        assert_eq!(
            canonical(expected).as_deref(),
            Ok(expected),
            "{expected} is stable"
        );
    }
    for bad in [
        "", "1.1.M", "0.1mi", "aoeu", "1i", "-3.01e-", " 1", "1 ", "300MB",
    ] {
        assert!(canonical(bad).is_err(), "{bad:?}");
    }
}
