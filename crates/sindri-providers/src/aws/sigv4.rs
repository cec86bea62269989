//! AWS Signature Version 4 for the few requests sindri makes: a POST with a body and
//! no query string (EC2/STS Query API, SSM JSON), or a GET. Written against the
//! specification (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>)
//! with `hmac` and `sha2`, instead of the `aws-sigv4` crate and its smithy runtime
//! (see docs/adr/0010-aws-client.md).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The secret parts of a signing identity, borrowed for one signature.
pub(crate) struct SigningKey<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
}

/// What is signed: the request's method, path, query, headers and body.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// The URL path, e.g. `/`.
    pub path: &'a str,
    /// The query string, already in canonical (sorted, encoded) form, or empty.
    pub canonical_query: &'a str,
    /// Headers to sign: lowercase names; must include `host` and `x-amz-date`.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Where and when: the service and region of the credential scope, and the request
/// time as `YYYYMMDDTHHMMSSZ`.
pub(crate) struct Scope<'a> {
    pub service: &'a str,
    pub region: &'a str,
    pub amz_date: &'a str,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The canonical request (step 1 of the specification).
pub(crate) fn canonical_request(req: &Request<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let mut canonical_headers = String::new();
    for (k, v) in &headers {
        canonical_headers.push_str(k);
        canonical_headers.push(':');
        canonical_headers.push_str(v);
        canonical_headers.push('\n');
    }
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        if req.path.is_empty() { "/" } else { req.path },
        req.canonical_query,
        canonical_headers,
        signed,
        sha256_hex(req.body)
    );
    (text, signed)
}

/// The `Authorization` header value for `req`.
pub(crate) fn authorization(key: &SigningKey<'_>, scope: &Scope<'_>, req: &Request<'_>) -> String {
    let (canonical, signed_headers) = canonical_request(req);
    let date = &scope.amz_date[..8.min(scope.amz_date.len())];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{credential_scope}\n{}",
        scope.amz_date,
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac(
        format!("AWS4{}", key.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        key.access_key_id
    )
}

/// Percent-encodes with SigV4's rules (RFC 3986 unreserved characters kept), which
/// is also a valid `application/x-www-form-urlencoded` encoding.
pub(crate) fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: SigningKey<'static> = SigningKey {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    };

    #[test]
    fn the_aws_documentation_example_signs_identically() {
        // The IAM ListUsers example of AWS's SigV4 documentation, with its published
        // signature.
        let headers = vec![
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
            ("host".to_string(), "iam.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        let req = Request {
            method: "GET",
            path: "/",
            canonical_query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let (canonical, _) = canonical_request(&req);
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let auth = authorization(
            &KEY,
            &Scope {
                service: "iam",
                region: "us-east-1",
                amz_date: "20150830T123600Z",
            },
            &req,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn a_query_api_post_signs_as_botocore_does() {
        // Produced with botocore 1.x `SigV4Auth(Credentials("AKIDEXAMPLE", <key>,
        // "session-token"), "ec2", "eu-west-1")` for the same request and instant.
        let body = b"Action=DescribeInstances&Version=2016-11-15&MaxResults=5";
        let headers = vec![
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
            (
                "host".to_string(),
                "ec2.eu-west-1.amazonaws.com".to_string(),
            ),
            ("x-amz-date".to_string(), "20261123T080000Z".to_string()),
            (
                "x-amz-security-token".to_string(),
                "session-token".to_string(),
            ),
        ];
        let auth = authorization(
            &KEY,
            &Scope {
                service: "ec2",
                region: "eu-west-1",
                amz_date: "20261123T080000Z",
            },
            &Request {
                method: "POST",
                path: "/",
                canonical_query: "",
                headers: &headers,
                body,
            },
        );
        assert_eq!(auth, BOTOCORE_EC2_POST);
    }

    /// See `a_query_api_post_signs_as_botocore_does`.
    const BOTOCORE_EC2_POST: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/eu-west-1/ec2/aws4_request, \
        SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, \
        Signature=574d3f41df86b233576e4e94c2d136019bc9acbbbfda7e87c07921095be33789";

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(uri_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(uri_encode("tag:sindri.managed"), "tag%3Asindri.managed");
        assert_eq!(uri_encode("a b/c=+é"), "a%20b%2Fc%3D%2B%C3%A9");
    }
}
