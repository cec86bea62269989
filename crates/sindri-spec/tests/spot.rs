//! `providers.aws.spot` takes `never`, `always` and `auto`, and the booleans the
//! issue names: `true` (= `always`) and `false` (= `never`). The loader, serde, the
//! generated JSON Schema and the diagnostics agree on that.

use sindri_spec::{Spec, SpotPolicy, load_str, schema};

const HEAD: &str = "name: dev\ndeployment:\n  provider: aws\n";

fn spot_of(value: &str) -> SpotPolicy {
    let src = format!("{HEAD}providers:\n  aws:\n    spot: {value}\n");
    let spec = load_str(&src, "sindri.yaml")
        .unwrap_or_else(|d| panic!("`spot: {value}` should load:\n{d}"));
    spec.providers.aws.expect("providers.aws").spot
}

#[test]
fn booleans_and_names_load() {
    assert_eq!(spot_of("true"), SpotPolicy::Always);
    assert_eq!(spot_of("false"), SpotPolicy::Never);
    assert_eq!(spot_of("always"), SpotPolicy::Always);
    assert_eq!(spot_of("never"), SpotPolicy::Never);
    assert_eq!(spot_of("auto"), SpotPolicy::Auto);
    assert_eq!(spot_of("\"auto\""), SpotPolicy::Auto);
}

#[test]
fn a_misspelled_policy_gets_a_suggestion_and_a_wrong_type_says_what_fits() {
    let bad = load_str(
        &format!("{HEAD}providers:\n  aws:\n    spot: alwyas\n"),
        "sindri.yaml",
    )
    .expect_err("a typo");
    let d = &bad.as_slice()[0];
    assert_eq!(d.path, "providers.aws.spot");
    assert_eq!((d.line, d.column), (6, 11));
    assert_eq!(d.found, "the string `alwyas`");
    assert_eq!(d.expected, "one of `never`, `always`, `auto`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `always`?"));

    let bad = load_str(
        &format!("{HEAD}providers:\n  aws:\n    spot: 1\n"),
        "sindri.yaml",
    )
    .expect_err("a number");
    let d = &bad.as_slice()[0];
    assert_eq!(d.found, "the integer `1`");
    assert!(
        d.expected.contains("`always`") && d.expected.contains("`true` or `false`"),
        "{}",
        d.expected
    );

    // YAML 1.2: `yes` is text, not a boolean, and no policy.
    let bad = load_str(
        &format!("{HEAD}providers:\n  aws:\n    spot: yes\n"),
        "sindri.yaml",
    )
    .expect_err("yes");
    assert_eq!(bad.as_slice()[0].found, "the string `yes`");
}

#[test]
fn the_schema_takes_the_same_values() {
    let v = jsonschema::validator_for(&schema()).expect("schema compiles");
    let with = |spot: serde_json::Value| {
        serde_json::json!({
            "name": "dev",
            "deployment": {"provider": "aws"},
            "providers": {"aws": {"spot": spot}},
        })
    };
    for ok in [
        serde_json::json!(true),
        serde_json::json!(false),
        serde_json::json!("never"),
        serde_json::json!("always"),
        serde_json::json!("auto"),
    ] {
        assert!(v.is_valid(&with(ok.clone())), "{ok} is refused");
    }
    for bad in [
        serde_json::json!("sometimes"),
        serde_json::json!(1),
        serde_json::json!(null),
    ] {
        assert!(!v.is_valid(&with(bad.clone())), "{bad} is accepted");
    }
    let def = &schema()["$defs"]["SpotPolicy"];
    assert!(
        def["description"]
            .as_str()
            .is_some_and(|d| d.contains("`true` is `always`")),
        "{def}"
    );
}

#[test]
fn serde_reads_both_forms_and_writes_the_name() {
    let spec: Spec = serde_json::from_value(serde_json::json!({
        "name": "dev",
        "deployment": {"provider": "aws"},
        "providers": {"aws": {"spot": true}},
    }))
    .expect("spec");
    let aws = spec.providers.aws.clone().expect("aws");
    assert_eq!(aws.spot, SpotPolicy::Always);
    let written = serde_json::to_value(&spec).expect("serialize");
    assert_eq!(written["providers"]["aws"]["spot"], "always");
    let e =
        serde_json::from_value::<SpotPolicy>(serde_json::json!("sometimes")).expect_err("unknown");
    assert!(e.to_string().contains("`auto`"), "{e}");
}
