//! Every class of mistake in a `sindri.yaml` is reported at the right line, column and
//! key path, says what was found and what was expected, and hints at the fix.

use sindri_spec::{Diagnostic, Diagnostics, load_file, load_str};

/// All diagnostics for `src`, which must fail to load.
fn errors(src: &str) -> Vec<Diagnostic> {
    match load_str(src, "sindri.yaml") {
        Ok(spec) => panic!("expected diagnostics, but it loaded: {spec:#?}"),
        Err(d) => d.into_vec(),
    }
}

/// The single diagnostic for `src`.
fn only(src: &str) -> Diagnostic {
    let all = errors(src);
    assert_eq!(
        all.len(),
        1,
        "expected one diagnostic, got:\n{}",
        Diagnostics::new(all.clone())
    );
    all.into_iter().next().unwrap()
}

fn at(d: &Diagnostic) -> (usize, usize, &str) {
    (d.line, d.column, d.path.as_str())
}

const HEAD: &str = "name: dev\ndeployment:\n  provider: docker\n  image: ubuntu:24.04\n";

#[test]
fn invalid_yaml_is_reported_at_the_parsers_position() {
    let d = only("name: dev\ndeployment:\n  provider: docker\n  image: ubuntu: 24.04\n");
    // The parser fails before it has read the key, so the path is the enclosing mapping.
    assert_eq!(at(&d), (4, 16, "deployment"));
    assert!(d.found.contains("invalid YAML"), "{}", d.found);
    assert!(
        d.found.contains("mapping values are not allowed"),
        "{}",
        d.found
    );
    assert_eq!(d.expected, "valid YAML 1.2");
    assert!(d.hint.as_deref().unwrap().contains("quoted"));
}

#[test]
fn tabs_in_indentation_get_a_hint() {
    let d = only("name: dev\ndeployment:\n\tprovider: docker\n");
    assert_eq!((d.line, d.path.as_str()), (3, "deployment"));
    assert!(d.hint.as_deref().unwrap().contains("tabs"), "{d}");
}

#[test]
fn an_unclosed_quote_is_a_syntax_error() {
    let d = only("name: \"dev\ndeployment: {}\n");
    assert_eq!(at(&d), (1, 7, "name"));
    assert!(d.found.contains("invalid YAML"));
}

#[test]
fn duplicate_keys_are_reported_at_the_second_naming_the_first() {
    let d = only(&format!("{HEAD}  image: debian:12\n"));
    assert_eq!(at(&d), (5, 3, "deployment.image"));
    assert_eq!(d.found, "duplicate key `image` (first written on line 4)");
    assert_eq!(d.expected, "each key once per mapping");
    assert_eq!(d.end_column, 8);
}

#[test]
fn duplicate_top_level_keys_too() {
    let d = only(&format!("{HEAD}name: other\n"));
    assert_eq!(at(&d), (5, 1, "name"));
    assert!(d.found.contains("first written on line 1"));
}

#[test]
fn an_empty_file_is_reported() {
    for src in ["", "\n\n   \n"] {
        let d = only(src);
        assert_eq!(at(&d), (1, 1, ""));
        assert_eq!(d.found, "an empty file");
        assert!(d.expected.contains("`name` and `deployment`"));
        assert!(d.hint.as_deref().unwrap().contains("sindri config init"));
    }
}

#[test]
fn a_file_with_only_comments_is_reported() {
    let d = only("# name: dev\n# deployment:\n#   provider: docker\n");
    assert_eq!(at(&d), (1, 1, ""));
    assert_eq!(d.found, "a file with only comments");
}

#[test]
fn an_empty_document_is_reported() {
    let d = only("---\n");
    assert_eq!(d.found, "an empty document");
}

#[test]
fn a_top_level_that_is_not_a_mapping_is_reported() {
    let d = only("- name: dev\n- name: prod\n");
    assert_eq!(at(&d), (1, 1, ""));
    assert_eq!(d.found, "a list");
    assert!(d.expected.starts_with("a mapping"));
    let d = only("just some text\n");
    assert_eq!(d.found, "the string `just some text`");
}

#[test]
fn a_second_document_is_reported() {
    let d = only(&format!("{HEAD}---\nname: other\n"));
    assert_eq!(at(&d), (5, 1, ""));
    assert!(d.found.contains("second YAML document"));
}

#[test]
fn wrong_types_say_what_was_found_and_expected() {
    let d = only("name: dev\ndeployment: 4\n");
    assert_eq!(at(&d), (2, 13, "deployment"));
    assert_eq!(d.found, "the integer `4`");
    assert_eq!(d.expected, "a mapping");
    assert!(d.hint.as_deref().unwrap().contains("`provider`"), "{d}");

    let d = only(&format!("{HEAD}  ports: 8080\n"));
    assert_eq!(at(&d), (5, 10, "deployment.ports"));
    assert_eq!(d.expected, "a list");
    assert_eq!(
        d.hint.as_deref(),
        Some("write a list: `[8080]`, or one `- item` per line")
    );

    let d = only(&format!("{HEAD}  env:\n    PORT: 8080\n"));
    assert_eq!(at(&d), (6, 11, "deployment.env.PORT"));
    assert_eq!(d.found, "the integer `8080`");
    assert_eq!(d.expected, "a string");
    assert_eq!(
        d.hint.as_deref(),
        Some("quote it to make it text: `\"8080\"`")
    );

    let d = only(&format!("{HEAD}  resources:\n"));
    // An empty value is shown at the `:` after its key.
    assert_eq!(at(&d), (5, 12, "deployment.resources"));
    assert_eq!(d.found, "an empty value");
}

#[test]
fn yaml_1_1_booleans_are_strings_and_say_so() {
    let d = only(&format!("{HEAD}providers:\n  e2b:\n    auto_pause: yes\n"));
    assert_eq!(at(&d), (7, 17, "providers.e2b.auto_pause"));
    assert_eq!(d.found, "the string `yes`");
    assert_eq!(d.expected, "`true` or `false`");
    assert!(
        d.hint
            .as_deref()
            .unwrap()
            .contains("YAML 1.2 reads `yes` as text")
    );

    // Where a string is expected, `yes`/`on` are taken as written.
    let spec = load_str(&format!("{HEAD}  env:\n    A: yes\n    B: on\n"), "x").unwrap();
    assert_eq!(spec.deployment.env["A"], "yes");
    assert_eq!(spec.deployment.env["B"], "on");
}

#[test]
fn unknown_keys_at_any_depth_suggest_the_close_one() {
    let d = only(&format!("{HEAD}  resources:\n    memroy: 2GiB\n"));
    assert_eq!(at(&d), (6, 5, "deployment.resources.memroy"));
    assert_eq!(d.found, "unknown key `memroy`");
    assert_eq!(d.expected, "one of `cpus`, `memory`, `disk`, `gpu`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `memory`?"));
    assert_eq!(d.end_column, 11);

    let d = only(&format!(
        "{HEAD}secrets:\n  - name: A\n    source: env\n    requried: false\n"
    ));
    assert_eq!(at(&d), (8, 5, "secrets[0].requried"));
    assert_eq!(d.hint.as_deref(), Some("did you mean `required`?"));

    let d = only(&format!(
        "{HEAD}providers:\n  kubernetes:\n    nodeSelector: {{}}\n"
    ));
    assert_eq!(d.hint.as_deref(), Some("did you mean `node_selector`?"));
}

#[test]
fn unknown_keys_far_from_any_known_one_get_no_suggestion() {
    let d = only(&format!("{HEAD}  bandwidth: 10\n"));
    assert_eq!(at(&d), (5, 3, "deployment.bandwidth"));
    assert_eq!(d.hint, None);
}

#[test]
fn a_key_at_the_wrong_level_says_where_it_belongs() {
    let d = only(&format!("{HEAD}image: ubuntu\n"));
    assert_eq!(at(&d), (5, 1, "image"));
    assert_eq!(
        d.hint.as_deref(),
        Some("`image` belongs under `deployment`")
    );
}

#[test]
fn a_misspelled_provider_suggests_the_right_one() {
    let d = only("name: dev\ndeployment:\n  provider: dokcer\n  image: ubuntu\n");
    assert_eq!(at(&d), (3, 13, "deployment.provider"));
    assert_eq!(d.found, "the string `dokcer`");
    assert!(
        d.expected
            .starts_with("one of `docker`, `kubernetes`, `fly`")
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `docker`?"));

    let d = only("name: dev\ndeployment:\n  provider: Kubernetes\n  image: ubuntu\n");
    assert_eq!(d.hint.as_deref(), Some("did you mean `kubernetes`?"));

    let d = only("name: dev\ndeployment:\n  provider: heroku\n  image: ubuntu\n");
    assert_eq!(d.hint, None);
}

#[test]
fn missing_required_keys_point_at_the_parent_mapping() {
    let d = only("deployment:\n  provider: docker\n  image: ubuntu\n");
    assert_eq!(at(&d), (1, 1, "name"));
    assert_eq!(d.found, "a mapping without `name`");
    assert!(
        d.expected
            .starts_with("the required key `name` (name of the environment")
    );

    let d = only("name: dev\ndeployment:\n  image: ubuntu\n");
    assert_eq!(at(&d), (3, 3, "deployment.provider"));
    assert_eq!(d.found, "a mapping without `provider`");
    assert!(
        d.hint
            .as_deref()
            .unwrap()
            .starts_with("add `provider: docker`")
    );

    let d = only(&format!("{HEAD}  resources:\n    gpu:\n      type: a100\n"));
    assert_eq!(at(&d), (7, 7, "deployment.resources.gpu.count"));

    let d = only(&format!("{HEAD}secrets:\n  - name: TOKEN\n"));
    assert_eq!(at(&d), (6, 5, "secrets[0].source"));
}

#[test]
fn negative_counts_are_reported() {
    let d = only(&format!("{HEAD}  resources:\n    gpu:\n      count: -1\n"));
    assert_eq!(at(&d), (7, 14, "deployment.resources.gpu.count"));
    assert_eq!(d.found, "`-1`, a negative number");
    assert_eq!(d.expected, "an integer of at least 1");

    let d = only(&format!("{HEAD}  resources:\n    gpu: {{count: 0}}\n"));
    assert_eq!(at(&d), (6, 18, "deployment.resources.gpu.count"));
    assert_eq!(d.found, "`0`");

    let d = only(&format!("{HEAD}  resources:\n    gpu: {{count: 1.5}}\n"));
    assert_eq!(d.expected, "an integer of at least 1");
    assert_eq!(d.found, "the number `1.5`");
}

#[test]
fn bad_sizes_are_reported_with_the_unit_at_fault() {
    let d = only(&format!("{HEAD}  resources:\n    memory: 2 parsecs\n"));
    assert_eq!(at(&d), (6, 13, "deployment.resources.memory"));
    assert_eq!(d.found, "unit `parsecs` in `2 parsecs`");
    assert!(d.expected.starts_with("a size such as `512MiB`"));
    assert_eq!(d.end_column, 22);

    let d = only(&format!("{HEAD}  resources:\n    disk: -5GiB\n"));
    assert_eq!(d.found, "`-5GiB`, a negative size");

    let d = only(&format!("{HEAD}  resources:\n    cpus: 0\n"));
    assert_eq!(at(&d), (6, 11, "deployment.resources.cpus"));
    assert_eq!(d.found, "0");
    assert!(d.expected.contains("greater than 0"));
}

#[test]
fn bad_ports_are_reported() {
    let d = only(&format!("{HEAD}  ports: [8080, 70000]\n"));
    assert_eq!(at(&d), (5, 17, "deployment.ports[1]"));
    assert_eq!(d.found, "port 70000 in `70000`");
    assert!(d.expected.contains("ports 1-65535"));

    let d = only(&format!("{HEAD}  ports:\n    - \"53/sctp\"\n"));
    assert_eq!(at(&d), (6, 7, "deployment.ports[0]"));
    assert_eq!(d.found, "protocol `sctp` in `53/sctp`");

    let d = only(&format!(
        "{HEAD}  ports:\n    - {{container: 80, host: 0}}\n"
    ));
    assert_eq!(at(&d), (6, 29, "deployment.ports[0].host"));
    assert_eq!(d.expected, "an integer from 1 to 65535");

    let d = only(&format!(
        "{HEAD}  ports:\n    - {{container: 80, hots: 8080}}\n"
    ));
    assert_eq!(at(&d), (6, 23, "deployment.ports[0].hots"));
    assert_eq!(d.hint.as_deref(), Some("did you mean `host`?"));
}

#[test]
fn names_that_are_not_dns_labels_say_why() {
    let cases = [
        (
            "My_Env",
            "it has uppercase letters (`M`, `E`), it has an underscore",
            Some("my-env"),
        ),
        ("web_app", "it has an underscore", Some("web-app")),
        ("1st", "it starts with a digit", None),
        ("dev-", "it ends with `-`", Some("dev")),
        ("dev.local", "it has the characters `.`", Some("dev-local")),
    ];
    for (name, why, suggestion) in cases {
        let d = only(&format!(
            "name: {name}\ndeployment:\n  provider: docker\n  image: x\n"
        ));
        assert_eq!(at(&d), (1, 7, "name"), "{name}");
        assert_eq!(
            d.found,
            format!("the environment name `{name}`, which is not a DNS label: {why}")
        );
        assert!(d.expected.starts_with("a DNS label"));
        assert_eq!(
            d.hint,
            suggestion.map(|s| format!("did you mean `{s}`?")),
            "{name}"
        );
    }
    let long = "a".repeat(64);
    let d = only(&format!(
        "name: {long}\ndeployment:\n  provider: docker\n  image: x\n"
    ));
    assert!(d.found.ends_with("it is 64 characters long"), "{}", d.found);
    assert!(d.expected.contains("at most 63 characters"));
}

#[test]
fn container_providers_need_an_image_or_a_build() {
    for provider in ["docker", "kubernetes", "fly", "devpod", "runpod"] {
        let d = only(&format!("name: dev\ndeployment:\n  provider: {provider}\n"));
        assert_eq!(at(&d), (3, 13, "deployment.image"), "{provider}");
        assert_eq!(
            d.found,
            format!("provider `{provider}` without `image` or `build`")
        );
        assert!(d.expected.starts_with("`image` or `build`"));
        assert!(d.hint.as_deref().unwrap().contains("image: ubuntu:24.04"));
    }
    for provider in ["e2b", "aws", "lyceum", "local"] {
        let src = format!("name: dev\ndeployment:\n  provider: {provider}\n");
        assert!(load_str(&src, "x").is_ok(), "{provider} needs no image");
    }
    // `image: ~` is no image.
    let d = only("name: dev\ndeployment:\n  provider: docker\n  image: ~\n");
    assert_eq!(d.path, "deployment.image");
    // A build is enough.
    let src = "name: dev\ndeployment:\n  provider: docker\n  build: {}\n";
    let spec = load_str(src, "x").unwrap();
    assert_eq!(spec.deployment.build.unwrap().dockerfile, "Dockerfile");
}

#[test]
fn image_and_build_are_not_both_allowed() {
    let d = only(&format!("{HEAD}  build:\n    dockerfile: Dockerfile\n"));
    assert_eq!(at(&d), (5, 3, "deployment.build"));
    assert_eq!(d.found, "both `image` (line 4) and `build`");
    assert_eq!(d.expected, "only one of `image` and `build`");
}

#[test]
fn secret_names_must_be_unique_and_valid() {
    let src = format!(
        "{HEAD}secrets:\n  - name: TOKEN\n    source: env\n  - name: TOKEN\n    source: env\n  - name: my-key\n    source: env\n"
    );
    let all = errors(&src);
    assert_eq!(all.len(), 2, "{}", Diagnostics::new(all.clone()));
    assert_eq!(at(&all[0]), (8, 11, "secrets[1].name"));
    assert_eq!(
        all[0].found,
        "the secret name `TOKEN` again (first used on line 6)"
    );
    assert_eq!(at(&all[1]), (10, 11, "secrets[2].name"));
    assert!(
        all[1]
            .found
            .contains("not a valid variable name: it has the characters `-`")
    );
    assert_eq!(all[1].hint.as_deref(), Some("did you mean `my_key`?"));
}

#[test]
fn file_secrets_need_a_path() {
    let d = only(&format!(
        "{HEAD}secrets:\n  - name: TLS\n    source: file\n"
    ));
    assert_eq!(at(&d), (7, 13, "secrets[0].path"));
    assert_eq!(d.found, "`source: file` without `path`");
    assert!(d.expected.starts_with("`path`: the file to read"));
}

#[test]
fn vault_secrets_need_a_path_and_a_key() {
    let all = errors(&format!(
        "{HEAD}secrets:\n  - name: API\n    source: vault\n"
    ));
    assert_eq!(all.len(), 2);
    assert_eq!(at(&all[0]), (7, 13, "secrets[0].path"));
    assert_eq!(at(&all[1]), (7, 13, "secrets[0].key"));
    assert_eq!(all[1].found, "`source: vault` without `key`");
}

#[test]
fn secret_fields_that_do_not_apply_to_the_source_are_errors() {
    let d = only(&format!(
        "{HEAD}secrets:\n  - name: A\n    source: env\n    path: x\n"
    ));
    assert_eq!(at(&d), (8, 5, "secrets[0].path"));
    assert_eq!(d.found, "`path` in a secret with `source: env`");
    assert_eq!(
        d.expected,
        "`path` only with `source: file` or `source: vault`"
    );

    let d = only(&format!(
        "{HEAD}secrets:\n  - name: A\n    source: file\n    path: a.txt\n    var: B\n"
    ));
    assert_eq!(at(&d), (9, 5, "secrets[0].var"));
    assert_eq!(d.expected, "`var` only with `source: env`");

    let d = only(&format!(
        "{HEAD}secrets:\n  - name: A\n    source: vault\n    path: p\n    key: k\n    var: B\n"
    ));
    assert_eq!(at(&d), (10, 5, "secrets[0].var"));
}

#[test]
fn secret_mounts_must_be_absolute() {
    let d = only(&format!(
        "{HEAD}secrets:\n  - name: A\n    source: env\n    mount: run/secrets/a\n"
    ));
    assert_eq!(at(&d), (8, 12, "secrets[0].mount"));
    assert_eq!(d.found, "the relative path `run/secrets/a`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `/run/secrets/a`?"));
}

#[test]
fn a_secret_and_an_env_var_of_the_same_name_conflict() {
    let d = only(&format!(
        "{HEAD}  env:\n    TOKEN: x\nsecrets:\n  - name: TOKEN\n    source: env\n"
    ));
    assert_eq!(at(&d), (8, 11, "secrets[0].name"));
    assert!(d.found.contains("also set in `deployment.env` (line 6)"));
}

#[test]
fn volume_names_are_unique_labels_and_paths_absolute() {
    let src = format!(
        "{HEAD}  volumes:\n    - name: data\n      path: /data\n    - name: data\n      path: cache\n    - name: Big_Data\n      path: /big\n"
    );
    let all = errors(&src);
    assert_eq!(all.len(), 3, "{}", Diagnostics::new(all.clone()));
    assert_eq!(at(&all[0]), (8, 13, "deployment.volumes[1].name"));
    assert_eq!(
        all[0].found,
        "the volume name `data` again (first used on line 6)"
    );
    assert_eq!(at(&all[1]), (9, 13, "deployment.volumes[1].path"));
    assert_eq!(all[1].found, "the relative path `cache`");
    assert_eq!(at(&all[2]), (10, 13, "deployment.volumes[2].name"));
    assert!(
        all[2]
            .found
            .starts_with("the volume name `Big_Data`, which is not a DNS label")
    );
}

#[test]
fn env_keys_must_be_variable_names() {
    let d = only(&format!("{HEAD}  env:\n    OK_1: a\n    NOT-OK: b\n"));
    assert_eq!(at(&d), (7, 5, "deployment.env.NOT-OK"));
    assert!(d.found.contains("it has the characters `-`"));
    assert_eq!(d.hint.as_deref(), Some("did you mean `NOT_OK`?"));

    let d = only(&format!("{HEAD}  env:\n    \"2FA\": b\n"));
    assert!(d.found.contains("it starts with a digit"));
}

#[test]
fn duplicate_host_ports_are_reported() {
    let d = only(&format!(
        "{HEAD}  ports:\n    - 8080\n    - \"5353:53/udp\"\n    - \"8080:80\"\n    - \"5353:53\"\n"
    ));
    assert_eq!(at(&d), (8, 7, "deployment.ports[2]"));
    assert_eq!(
        d.found,
        "host port 8080/tcp again (first published on line 6)"
    );
    assert_eq!(d.expected, "each host port published once");
}

#[test]
fn max_restarts_must_be_sane() {
    let d = only(&format!(
        "{HEAD}run:\n  command: make\n  max_restarts: 1000\n"
    ));
    assert_eq!(at(&d), (7, 17, "run.max_restarts"));
    assert_eq!(d.expected, "an integer from 0 to 100");
    let d = only(&format!(
        "{HEAD}run:\n  command: make\n  max_restarts: -2\n"
    ));
    assert_eq!(d.found, "`-2`, a negative number");
}

#[test]
fn relative_home_is_reported() {
    let d = only(&format!("{HEAD}  home: home/dev\n"));
    assert_eq!(at(&d), (5, 9, "deployment.home"));
}

#[test]
fn application_tags_are_refused() {
    let d = only(&format!("{HEAD}  env:\n    A: !secret x\n"));
    assert_eq!(at(&d), (6, 8, "deployment.env.A"));
    assert_eq!(d.found, "the tag `!secret`");
    // Standard tags work.
    let spec = load_str(&format!("{HEAD}  env:\n    A: !!str 5\n"), "x").unwrap();
    assert_eq!(spec.deployment.env["A"], "5");
}

#[test]
fn several_errors_are_all_listed_in_file_order() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/many-errors.yaml"
    );
    let all = load_file(std::path::Path::new(path))
        .unwrap_err()
        .into_vec();
    let got: Vec<(usize, usize, &str)> = all.iter().map(at).collect();
    assert_eq!(
        got,
        vec![
            (1, 7, "name"),
            (6, 5, "deployment.resources.memroy"),
            (7, 11, "deployment.resources.disk"),
            (9, 14, "deployment.resources.gpu.count"),
            (10, 15, "deployment.ports[1]"),
            (13, 13, "secrets[0].path"),
            (14, 11, "secrets[1].name"),
            (16, 5, "secrets[1].key"),
        ]
    );
    assert!(all.iter().all(|d| d.file == path));
    assert_eq!(all[1].hint.as_deref(), Some("did you mean `memory`?"));
}

#[test]
fn display_renders_like_a_compiler() {
    let err = load_str(
        &format!("{HEAD}  resources:\n    memroy: 2GiB\n"),
        "sindri.yaml",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "error: sindri.yaml:6:5: deployment.resources.memroy: found unknown key `memroy`; \
         expected one of `cpus`, `memory`, `disk`, `gpu`\n \
         6 |     memroy: 2GiB\n   \
           |     ^^^^^^\n\
         hint: did you mean `memory`?\n\n\
         1 error in sindri.yaml"
    );
}

#[test]
fn diagnostics_serialise_for_json_output() {
    let err = load_str(
        &format!("{HEAD}  resources:\n    memroy: 2GiB\n"),
        "sindri.yaml",
    )
    .unwrap_err();
    let v = serde_json::to_value(&err).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{
            "file": "sindri.yaml",
            "line": 6,
            "column": 5,
            "end_column": 11,
            "path": "deployment.resources.memroy",
            "found": "unknown key `memroy`",
            "expected": "one of `cpus`, `memory`, `disk`, `gpu`",
            "hint": "did you mean `memory`?"
        }])
    );
}

#[test]
fn a_problem_inside_an_anchor_is_reported_once_where_it_is_written() {
    let src = "name: dev\ndefaults: &res\n  memroy: 1GiB\ndeployment:\n  provider: docker\n  image: x\n  resources: *res\n";
    let all = errors(src);
    // `defaults` is unknown; the bad key inside the anchor is reported at line 3.
    let got: Vec<_> = all.iter().map(at).collect();
    assert_eq!(
        got,
        vec![(2, 1, "defaults"), (3, 3, "deployment.resources.memroy")]
    );
}

#[test]
fn an_unreadable_file_is_one_diagnostic_without_a_position() {
    let err = load_file(std::path::Path::new("/nonexistent/sindri.yaml")).unwrap_err();
    let d = &err.as_slice()[0];
    assert_eq!((d.line, d.column), (0, 0));
    assert_eq!(d.found, "no such file");
    assert!(
        err.to_string()
            .starts_with("error: /nonexistent/sindri.yaml: found no such file")
    );
}

#[test]
fn alias_bombs_fail_fast() {
    let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = i - 1;
        src.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let d = only(&src);
    assert!(d.found.contains("100000 nodes"), "{d}");
}

#[test]
fn windows_line_endings_and_a_bom_do_not_shift_positions() {
    let src = "\u{feff}name: dev\r\ndeployment:\r\n  provider: docker\r\n  image: x\r\n  resources:\r\n    memroy: 1GiB\r\n";
    let d = only(src);
    assert_eq!(at(&d), (6, 5, "deployment.resources.memroy"));
    assert_eq!(d.source_line, "    memroy: 1GiB");
    let d = only("\u{feff}name: Bad\ndeployment:\n  provider: local\n");
    assert_eq!(at(&d), (1, 7, "name"));
    assert_eq!(d.source_line, "name: Bad");
    let ok = "name: dev\r\ndeployment:\r\n  provider: docker\r\n  image: x\r\n";
    assert!(load_str(ok, "x").is_ok());
}
