//! The HTTP side: SigV4-signed requests to EC2 and STS (Query API, XML answers) and
//! SSM (JSON protocol), retries with backoff for throttling and passing faults, and
//! every AWS error code mapped to a typed [`ErrorKind`] in one place ([`classify`]).

use std::collections::BTreeMap;
use std::time::Duration;

use sindri_core::{Error, ErrorKind, Result};
use sindri_spec::{AwsSettings, ProviderKind};
use tokio::sync::Mutex;

use super::credentials::{self, AwsEnv, Credentials, Imds, Profile};
use super::sigv4;
use super::time::amz_date;

/// The services sindri calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Service {
    Ec2,
    Ssm,
    Sts,
}

impl Service {
    /// The SigV4 signing name and endpoint prefix.
    fn name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Ssm => "ssm",
            Service::Sts => "sts",
        }
    }

    /// The suffix of its `AWS_ENDPOINT_URL_<SERVICE>` variable.
    fn env_suffix(self) -> &'static str {
        match self {
            Service::Ec2 => "EC2",
            Service::Ssm => "SSM",
            Service::Sts => "STS",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Service::Ec2 => "2016-11-15",
            Service::Ssm => "2014-11-06",
            Service::Sts => "2011-06-15",
        }
    }
}

/// Timing and paging, adjustable for tests against emulators.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// `MaxResults` of every paginated Describe call (clamped to each call's range).
    pub page_size: u32,
    /// Tries of one request, counting the first.
    pub max_attempts: u32,
    /// First retry delay; doubled each time, with jitter, up to 20 s.
    pub retry_base: Duration,
    /// Interval between polls while waiting for a state.
    pub poll_interval: Duration,
    /// Polls before a wait gives up.
    pub max_polls: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            page_size: 1000,
            max_attempts: 6,
            retry_base: Duration::from_millis(500),
            poll_interval: Duration::from_secs(5),
            max_polls: 120,
        }
    }
}

/// Installs rustls's `ring` provider for reqwest (built with `rustls-no-provider`, so
/// aws-lc-rs and its C build stay out). Another provider installed first serves as well.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An AWS error response, before it becomes a sindri error.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub(crate) fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

/// What sindri can do about an AWS error code (and HTTP status, for codes it does
/// not know).
pub(crate) fn classify(code: &str, status: u16) -> ErrorKind {
    const CAPACITY: &[&str] = &[
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientCapacityOnOutpost",
        "SpotMaxPriceTooLow",
        "capacity-not-available",
        "capacity-oversubscribed",
        "InsufficientFreeAddressesInSubnet",
        "Unsupported",
    ];
    const AUTH: &[&str] = &[
        "AuthFailure",
        "UnauthorizedOperation",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "OptInRequired",
        "Blocked",
        "PendingVerification",
    ];
    const TRANSIENT: &[&str] = &[
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "Unavailable",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    ];
    const QUOTA: &[&str] = &[
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "ResourceLimitExceeded",
        "SecurityGroupLimitExceeded",
        "RulesPerSecurityGroupLimitExceeded",
        "VolumeLimitExceeded",
        "MaxIOPSLimitExceeded",
        "AddressLimitExceeded",
        "ParameterLimitExceeded",
    ];
    if CAPACITY.contains(&code) {
        ErrorKind::Capacity
    } else if AUTH.contains(&code) {
        ErrorKind::Auth
    } else if TRANSIENT.contains(&code) {
        ErrorKind::Transient
    } else if QUOTA.contains(&code) {
        ErrorKind::Quota
    } else if code.starts_with("InvalidAMIID.") {
        // A missing image is a wrong `deployment.image`, not a missing environment.
        ErrorKind::Invalid
    } else if code.ends_with(".NotFound") || code == "ParameterNotFound" {
        ErrorKind::NotFound
    } else if code.ends_with(".Duplicate") {
        ErrorKind::Conflict
    } else if code.starts_with("InvalidParameter")
        || code.starts_with("InvalidKeyPair.")
        || code.starts_with("InvalidBlockDeviceMapping")
        || code.starts_with("InvalidSubnet")
        || code.starts_with("InvalidSecurityGroup")
        || matches!(
            code,
            "InvalidInstanceType"
                | "MissingParameter"
                | "ValidationError"
                | "ValidationException"
                | "VPCIdNotSpecified"
                | "InvalidInput"
                | "InvalidRequest"
                | "UnknownParameter"
        )
    {
        ErrorKind::Invalid
    } else if status >= 500 || status == 429 {
        ErrorKind::Transient
    } else {
        ErrorKind::Platform
    }
}

/// Reads `<Code>` and `<Message>` from an EC2 (`<Response><Errors><Error>`) or STS
/// (`<ErrorResponse><Error>`) error document.
pub(crate) fn parse_xml_error(status: u16, body: &str) -> ApiError {
    let field = |name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&close)? + start;
        let raw = &body[start..end];
        Some(
            quick_xml::escape::unescape(raw)
                .map(|s| s.into_owned())
                .unwrap_or_else(|_| raw.to_string()),
        )
    };
    ApiError {
        status,
        code: field("Code").unwrap_or_else(|| format!("HTTP{status}")),
        message: field("Message").unwrap_or_else(|| first_line(body)),
    }
}

/// Reads `__type` and `message` from an AWS JSON protocol error.
fn parse_json_error(status: u16, header_type: Option<&str>, body: &str) -> ApiError {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    let raw_type = header_type
        .map(str::to_string)
        .or_else(|| v.get("__type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| format!("HTTP{status}"));
    // `com.amazonaws.ssm#ParameterNotFound` or `ParameterNotFound:http://...`.
    let code = raw_type
        .rsplit('#')
        .next()
        .unwrap_or(&raw_type)
        .split(':')
        .next()
        .unwrap_or(&raw_type)
        .to_string();
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| first_line(body));
    ApiError {
        status,
        code,
        message,
    }
}

fn first_line(body: &str) -> String {
    body.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// A signed-request client for one account (credential chain) in any region.
pub(crate) struct Api {
    http: reqwest::Client,
    env: AwsEnv,
    settings: AwsSettings,
    profile: Profile,
    imds: Option<Imds>,
    creds: Mutex<Credentials>,
    /// The source of the credentials first resolved, for messages.
    pub(crate) credential_source: String,
    /// The region used when a deployment does not name one.
    pub(crate) region: String,
    /// Where `region` came from.
    pub(crate) region_source: String,
    pub(crate) tuning: Tuning,
}

impl Api {
    /// Resolves credentials and region (the first I/O the provider does).
    pub(crate) async fn connect(
        env: &AwsEnv,
        settings: &AwsSettings,
        tuning: Tuning,
    ) -> Result<Api> {
        let profile = credentials::load_profile(env, settings)?;
        let imds = Imds::new(env)?;
        let creds =
            credentials::resolve_credentials(env, settings, &profile, imds.as_ref()).await?;
        let (region, region_source) =
            credentials::resolve_region(env, settings, &profile, imds.as_ref()).await?;
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("sindri/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            http,
            env: env.clone(),
            settings: settings.clone(),
            profile,
            imds,
            credential_source: creds.source.clone(),
            creds: Mutex::new(creds),
            region,
            region_source,
            tuning,
        })
    }

    /// The endpoint of `service` in `region`: `AWS_ENDPOINT_URL_<SERVICE>`, then
    /// `AWS_ENDPOINT_URL`, then the profile's `endpoint_url`, then AWS's own.
    pub(crate) fn endpoint(&self, service: Service, region: &str) -> String {
        if !self.env.flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") {
            let specific = format!("AWS_ENDPOINT_URL_{}", service.env_suffix());
            if let Some(u) = self
                .env
                .get(&specific)
                .or_else(|| self.env.get("AWS_ENDPOINT_URL"))
                .or_else(|| self.profile.get("endpoint_url"))
            {
                return u.trim().trim_end_matches('/').to_string();
            }
        }
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://{}.{region}.{suffix}", service.name())
    }

    /// A plain unsigned GET (the public-address lookup), as text.
    pub(crate) async fn get_text(
        &self,
        url: &str,
        timeout: Duration,
    ) -> std::result::Result<String, String> {
        let r = self
            .http
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("HTTP {}", r.status()));
        }
        r.text().await.map_err(|e| e.to_string())
    }

    /// Fresh credentials: re-resolved when they expire within five minutes.
    async fn credentials(&self) -> Result<Credentials> {
        let mut guard = self.creds.lock().await;
        if guard.expiring(sindri_core::unix_now(), 300) {
            *guard = credentials::resolve_credentials(
                &self.env,
                &self.settings,
                &self.profile,
                self.imds.as_ref(),
            )
            .await?;
        }
        Ok(guard.clone())
    }

    /// A Query API call (EC2, STS): form-encoded POST, XML answer.
    pub(crate) async fn query(
        &self,
        service: Service,
        region: &str,
        action: &str,
        params: &Params,
    ) -> std::result::Result<String, Failure> {
        let mut body = format!(
            "Action={}&Version={}",
            sigv4::uri_encode(action),
            service.api_version()
        );
        for (k, v) in &params.0 {
            body.push('&');
            body.push_str(&sigv4::uri_encode(k));
            body.push('=');
            body.push_str(&sigv4::uri_encode(v));
        }
        self.send(
            service,
            region,
            action,
            "application/x-www-form-urlencoded; charset=utf-8",
            None,
            body.into_bytes(),
        )
        .await
    }

    /// A JSON protocol call (SSM): `X-Amz-Target: <prefix>.<action>`.
    pub(crate) async fn json(
        &self,
        service: Service,
        region: &str,
        target: &str,
        action: &str,
        body: &serde_json::Value,
    ) -> std::result::Result<serde_json::Value, Failure> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| Failure::Local(Error::internal(e.to_string())))?;
        let text = self
            .send(
                service,
                region,
                action,
                "application/x-amz-json-1.1",
                Some(format!("{target}.{action}")),
                bytes,
            )
            .await?;
        serde_json::from_str(&text).map_err(|e| {
            Failure::Local(
                Error::new(
                    ErrorKind::Platform,
                    format!("{action}: the answer is not JSON: {e}"),
                )
                .with_provider(ProviderKind::Aws),
            )
        })
    }

    async fn send(
        &self,
        service: Service,
        region: &str,
        action: &str,
        content_type: &str,
        target: Option<String>,
        body: Vec<u8>,
    ) -> std::result::Result<String, Failure> {
        let endpoint = self.endpoint(service, region);
        let url = reqwest::Url::parse(&format!("{endpoint}/")).map_err(|e| {
            Failure::Local(
                Error::invalid(format!(
                    "the {} endpoint `{endpoint}` is not a URL: {e}",
                    service.name()
                ))
                .with_provider(ProviderKind::Aws)
                .with_hint("check AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>"),
            )
        })?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(Failure::Local(
                    Error::invalid(format!("the endpoint `{endpoint}` has no host"))
                        .with_provider(ProviderKind::Aws),
                ));
            }
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let creds = self.credentials().await.map_err(Failure::Local)?;
            let date = amz_date(sindri_core::unix_now());
            let mut headers = vec![
                ("content-type".to_string(), content_type.to_string()),
                ("host".to_string(), host.clone()),
                ("x-amz-date".to_string(), date.clone()),
            ];
            if let Some(t) = &target {
                headers.push(("x-amz-target".to_string(), t.clone()));
            }
            if let Some(tok) = &creds.session_token {
                headers.push(("x-amz-security-token".to_string(), tok.expose().to_string()));
            }
            let auth = sigv4::authorization(
                &sigv4::SigningKey {
                    access_key_id: &creds.access_key_id,
                    secret_access_key: creds.secret_access_key.expose(),
                },
                &sigv4::Scope {
                    service: service.name(),
                    region,
                    amz_date: &date,
                },
                &sigv4::Request {
                    method: "POST",
                    path: url.path(),
                    canonical_query: "",
                    headers: &headers,
                    body: &body,
                },
            );
            let mut req = self.http.post(url.clone()).body(body.clone());
            for (k, v) in &headers {
                if k == "host" {
                    continue;
                }
                let mut value = reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                    Failure::Local(
                        Error::new(
                            ErrorKind::Auth,
                            format!("{k} contains characters HTTP cannot carry"),
                        )
                        .with_provider(ProviderKind::Aws),
                    )
                })?;
                if k == "x-amz-security-token" {
                    value.set_sensitive(true);
                }
                req = req.header(k.as_str(), value);
            }
            let mut auth_value = reqwest::header::HeaderValue::from_str(&auth).map_err(|_| {
                Failure::Local(Error::internal("the signature is not a valid header"))
            })?;
            auth_value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, auth_value);

            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let err_type = resp
                        .headers()
                        .get("x-amzn-errortype")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match resp.text().await {
                        Ok(text) if (200..300).contains(&status) => return Ok(text),
                        Ok(text) => {
                            let e = if target.is_some() {
                                parse_json_error(status, err_type.as_deref(), &text)
                            } else {
                                parse_xml_error(status, &text)
                            };
                            Err(Some(e))
                        }
                        Err(_) => Err(None),
                    }
                }
                Err(e) => {
                    tracing::debug!(action, error = %e, "AWS request failed to complete");
                    Err(None)
                }
            };
            let retry = match &outcome {
                Err(Some(api)) => classify(&api.code, api.status) == ErrorKind::Transient,
                Err(None) => true,
                Ok(()) => false,
            };
            if retry && attempt < self.tuning.max_attempts {
                tokio::time::sleep(self.backoff(attempt)).await;
                continue;
            }
            return Err(match outcome {
                Err(Some(api)) => Failure::Api(api),
                _ => Failure::Local(
                    Error::new(
                        ErrorKind::Unavailable,
                        format!("{action}: cannot reach {endpoint} after {attempt} attempts"),
                    )
                    .with_provider(ProviderKind::Aws)
                    .with_hint("check the network, and AWS_ENDPOINT_URL if you set it"),
                ),
            });
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .tuning
            .retry_base
            .saturating_mul(1u32 << (attempt - 1).min(10));
        let capped = exp.min(Duration::from_secs(20));
        // Jitter in [1/2, 1): enough to spread retries without a random crate.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let frac = 0.5 + f64::from(nanos % 1000) / 2000.0;
        capped.mul_f64(frac)
    }

    /// Converts a failure into sindri's error for `action`.
    pub(crate) fn error(&self, action: &str, f: Failure) -> Error {
        match f {
            Failure::Local(e) => e,
            Failure::Api(api) => api_error(action, &api, &self.credential_source),
        }
    }
}

/// Why a call failed: an AWS error answer (which callers may inspect, e.g. to treat
/// `InvalidGroup.NotFound` as success) or a local/transport failure already mapped.
#[derive(Debug)]
pub(crate) enum Failure {
    Api(ApiError),
    Local(Error),
}

impl Failure {
    /// The AWS error code, when AWS answered.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Failure::Api(a) => Some(&a.code),
            Failure::Local(_) => None,
        }
    }
}

/// A typed sindri error for an AWS error answer: the message says what failed and
/// AWS's words; the hint says what to do, naming the credential source (never a
/// secret) for authentication failures.
pub(crate) fn api_error(action: &str, api: &ApiError, credential_source: &str) -> Error {
    let kind = classify(&api.code, api.status);
    let message = format!("{action} failed: {} ({})", api.message.trim(), api.code);
    let e = Error::new(kind, message).with_provider(ProviderKind::Aws);
    match kind {
        ErrorKind::Auth => e.with_hint(format!(
            "the credentials came from {credential_source}; check them with `aws sts get-caller-identity`{}",
            if api.code == "UnauthorizedOperation" || api.code.starts_with("AccessDenied") {
                format!(", and that the identity may call ec2:{}", action.split_whitespace().next().unwrap_or(action))
            } else {
                String::new()
            }
        )),
        ErrorKind::Capacity => e.with_hint(
            "AWS has no capacity for this request right now: try another instance type (providers.aws.instance_type), region, or spot: never/auto",
        ),
        ErrorKind::Quota => e.with_hint("an account limit was reached: request an increase in the Service Quotas console, or remove unused instances"),
        ErrorKind::Transient => e.with_hint("AWS is throttling or failing for now; retry in a minute"),
        _ => e,
    }
}

/// Query API parameters, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    pub(crate) fn new() -> Params {
        Params::default()
    }

    pub(crate) fn set(&mut self, k: impl Into<String>, v: impl Into<String>) -> &mut Params {
        self.0.push((k.into(), v.into()));
        self
    }

    /// `Filter.N.Name` / `Filter.N.Value.M`.
    pub(crate) fn filters(&mut self, filters: &[(&str, Vec<String>)]) -> &mut Params {
        for (i, (name, values)) in filters.iter().enumerate() {
            self.set(format!("Filter.{}.Name", i + 1), *name);
            for (j, v) in values.iter().enumerate() {
                self.set(format!("Filter.{}.Value.{}", i + 1, j + 1), v.clone());
            }
        }
        self
    }

    /// `TagSpecification.N` for `resource_type` with `tags`.
    pub(crate) fn tag_spec(
        &mut self,
        n: usize,
        resource_type: &str,
        tags: &BTreeMap<String, String>,
    ) -> &mut Params {
        self.set(format!("TagSpecification.{n}.ResourceType"), resource_type);
        for (j, (k, v)) in tags.iter().enumerate() {
            self.set(format!("TagSpecification.{n}.Tag.{}.Key", j + 1), k.clone());
            self.set(
                format!("TagSpecification.{n}.Tag.{}.Value", j + 1),
                v.clone(),
            );
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_kinds() {
        let cases = [
            ("InsufficientInstanceCapacity", 500, ErrorKind::Capacity),
            ("SpotMaxPriceTooLow", 400, ErrorKind::Capacity),
            ("AuthFailure", 401, ErrorKind::Auth),
            ("UnauthorizedOperation", 403, ErrorKind::Auth),
            ("ExpiredToken", 400, ErrorKind::Auth),
            ("RequestLimitExceeded", 503, ErrorKind::Transient),
            ("Throttling", 400, ErrorKind::Transient),
            ("InstanceLimitExceeded", 400, ErrorKind::Quota),
            ("VcpuLimitExceeded", 400, ErrorKind::Quota),
            ("InvalidAMIID.NotFound", 400, ErrorKind::Invalid),
            ("InvalidAMIID.Malformed", 400, ErrorKind::Invalid),
            ("InvalidParameterValue", 400, ErrorKind::Invalid),
            ("InvalidGroup.NotFound", 400, ErrorKind::NotFound),
            ("InvalidKeyPair.Duplicate", 400, ErrorKind::Conflict),
            ("InvalidKeyPair.Format", 400, ErrorKind::Invalid),
            ("InvalidGroup.Duplicate", 400, ErrorKind::Conflict),
            ("SomethingNew", 503, ErrorKind::Transient),
            ("SomethingNew", 400, ErrorKind::Platform),
        ];
        for (code, status, kind) in cases {
            assert_eq!(classify(code, status), kind, "{code}");
        }
    }

    #[test]
    fn ec2_and_sts_error_documents_parse() {
        let ec2 = "<?xml version=\"1.0\"?><Response><Errors><Error><Code>InvalidGroup.NotFound</Code>\
                   <Message>The security group &apos;sg-1&apos; does not exist</Message></Error></Errors>\
                   <RequestID>r</RequestID></Response>";
        let e = parse_xml_error(400, ec2);
        assert_eq!(e.code, "InvalidGroup.NotFound");
        assert_eq!(e.message, "The security group 'sg-1' does not exist");
        let sts = "<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>gone</Message></Error></ErrorResponse>";
        assert_eq!(parse_xml_error(400, sts).code, "ExpiredToken");
        let j = parse_json_error(
            400,
            None,
            r#"{"__type":"com.amazonaws.ssm#ParameterNotFound","message":"nope"}"#,
        );
        assert_eq!(
            (j.code.as_str(), j.message.as_str()),
            ("ParameterNotFound", "nope")
        );
    }

    #[test]
    fn auth_errors_name_the_source_not_the_secret() {
        let api = ApiError {
            status: 401,
            code: "AuthFailure".into(),
            message: "AWS was not able to validate the provided access credentials".into(),
        };
        let e = api_error(
            "DescribeInstances",
            &api,
            "profile `dev` in /home/u/.aws/credentials",
        );
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(e.hint().unwrap().contains("profile `dev`"));
    }
}
