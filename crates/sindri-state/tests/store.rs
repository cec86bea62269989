//! The state store as the CLI uses it: records survive a reopen unchanged, old files
//! are migrated, and files sindri must not touch are refused with a useful error.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;
use sindri_core::{Deployment, DeploymentState, ErrorKind};
use sindri_spec::ProviderKind;
use sindri_state::{
    InstalledExtension, RunFilter, RunRecord, RunState, SCHEMA_VERSION, STATE_FILE_NAME, StateStore,
};

fn deployment(project: &str, name: &str) -> Deployment {
    let mut d = Deployment::creating(name, ProviderKind::Fly, project, "sha256:abc");
    d.resource_id = Some(format!("machine-{name}"));
    d.details.insert("app".into(), format!("sindri-{name}"));
    d.details.insert("region".into(), "ams".into());
    d.created_at = 1_700_000_000;
    d.updated_at = 1_700_000_100;
    d
}

fn run(id: &str, project: &str, environment: &str) -> RunRecord {
    let mut r = RunRecord::new(
        project,
        environment,
        ProviderKind::Aws,
        "python train.py --epochs 3",
    );
    r.id = id.to_string();
    r
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn a_deployment_reads_back_exactly_as_written_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let d = deployment("proj", "dev");
    StateStore::open(dir.path())
        .unwrap()
        .upsert_deployment(&d)
        .unwrap();

    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.get_deployment("proj", "dev").unwrap(), Some(d));
    assert_eq!(store.get_deployment("proj", "prod").unwrap(), None);
    assert_eq!(store.get_deployment("other", "dev").unwrap(), None);
}

#[test]
fn replacing_a_deployment_keeps_when_it_was_first_created() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let first = deployment("proj", "dev");
    store.upsert_deployment(&first).unwrap();

    let mut again = deployment("proj", "dev");
    again.created_at = 1_800_000_000;
    again.updated_at = 1_800_000_000;
    again.spec_hash = "sha256:def".into();
    again.state = DeploymentState::Ready;
    again.resource_id = None;
    again.details.clear();
    store.upsert_deployment(&again).unwrap();

    let stored = store.get_deployment("proj", "dev").unwrap().unwrap();
    assert_eq!(stored.created_at, first.created_at);
    assert_eq!(
        stored,
        Deployment {
            created_at: first.created_at,
            ..again
        }
    );
    assert_eq!(store.list_deployments().unwrap().len(), 1);
}

#[test]
fn deployments_are_found_by_name_across_projects_and_listed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    for (project, name) in [("p2", "dev"), ("p1", "prod"), ("p1", "dev"), ("p3", "gpu")] {
        store.upsert_deployment(&deployment(project, name)).unwrap();
    }
    let by_name: Vec<(String, String)> = store
        .find_deployments_by_name("dev")
        .unwrap()
        .into_iter()
        .map(|d| (d.project, d.name))
        .collect();
    assert_eq!(
        by_name,
        [("p1".into(), "dev".into()), ("p2".into(), "dev".into())]
    );
    assert!(store.find_deployments_by_name("nope").unwrap().is_empty());

    let all: Vec<String> = store
        .list_deployments()
        .unwrap()
        .into_iter()
        .map(|d| format!("{}/{}", d.project, d.name))
        .collect();
    assert_eq!(all, ["p1/dev", "p1/prod", "p2/dev", "p3/gpu"]);
}

#[test]
fn setting_a_state_changes_only_the_state_and_update_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let d = deployment("proj", "dev");
    store.upsert_deployment(&d).unwrap();

    store
        .set_deployment_state("proj", "dev", DeploymentState::Stopped)
        .unwrap();
    let stored = store.get_deployment("proj", "dev").unwrap().unwrap();
    assert_eq!(stored.state, DeploymentState::Stopped);
    assert!(
        stored.updated_at > d.updated_at,
        "updated_at was not bumped"
    );
    assert_eq!(
        stored,
        Deployment {
            state: DeploymentState::Stopped,
            updated_at: stored.updated_at,
            ..d
        }
    );
}

#[test]
fn setting_the_state_of_an_unknown_deployment_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let err = store
        .set_deployment_state("proj", "ghost", DeploymentState::Ready)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("ghost"), "{err}");
    assert!(err.message().contains(STATE_FILE_NAME), "{err}");
}

#[test]
fn deleting_a_deployment_keeps_its_history_but_forgets_its_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store.upsert_deployment(&deployment("proj", "dev")).unwrap();
    store
        .upsert_deployment(&deployment("proj", "prod"))
        .unwrap();
    store
        .record_event("proj", "dev", "deploy", "machine created")
        .unwrap();
    for env in ["dev", "prod"] {
        store
            .record_extension(&InstalledExtension {
                project: "proj".into(),
                environment: env.into(),
                extension: "python".into(),
                version: "3.12".into(),
                installed_at: 1_700_000_000,
                validated_at: None,
            })
            .unwrap();
    }

    assert!(store.delete_deployment("proj", "dev").unwrap());
    store
        .record_event("proj", "dev", "destroy", "machine destroyed")
        .unwrap();

    assert_eq!(store.get_deployment("proj", "dev").unwrap(), None);
    assert!(store.get_deployment("proj", "prod").unwrap().is_some());
    let history: Vec<String> = store
        .events("proj", "dev", 10)
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(history, ["machine created", "machine destroyed"]);
    assert!(store.extensions("proj", "dev").unwrap().is_empty());
    assert_eq!(store.extensions("proj", "prod").unwrap().len(), 1);
    assert!(
        !store.delete_deployment("proj", "dev").unwrap(),
        "a second delete should report that nothing was there"
    );
}

#[test]
fn events_return_the_newest_ones_oldest_first_per_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let mut recorded = Vec::new();
    for i in 0..5 {
        recorded.push(
            store
                .record_event("proj", "dev", "step", &format!("step {i}"))
                .unwrap(),
        );
    }
    store
        .record_event("proj", "prod", "deploy", "other environment")
        .unwrap();
    store
        .record_event("other", "dev", "deploy", "other project")
        .unwrap();

    let last_two = store.events("proj", "dev", 2).unwrap();
    assert_eq!(last_two, recorded[3..]);
    assert_eq!(last_two[0].kind, "step");
    assert_eq!(last_two[1].message, "step 4");
    assert!(last_two[0].id < last_two[1].id);

    let all = StateStore::open(dir.path())
        .unwrap()
        .events("proj", "dev", usize::MAX)
        .unwrap();
    assert_eq!(all, recorded);
    assert!(store.events("proj", "dev", 0).unwrap().is_empty());
    assert!(store.events("proj", "nothing", 10).unwrap().is_empty());
}

#[test]
fn a_run_reads_back_exactly_as_written_and_updates_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let mut r = RunRecord::new("proj", "gpu", ProviderKind::Runpod, "python train.py");
    store.insert_run(&r).unwrap();
    assert_eq!(store.get_run(&r.id).unwrap(), Some(r.clone()));
    assert_eq!(r.state, RunState::Pending);

    r.state = RunState::Interrupted;
    r.exit_code = Some(-9);
    r.ended_at = Some(r.started_at + 3600);
    r.restarts = 3;
    r.cost_estimate_usd = Some(1.25);
    r.log_path = Some("/home/u/.local/state/sindri/logs/run.log".into());
    r.details = BTreeMap::from([
        ("checkpoint".to_string(), "s3://bucket/ckpt-7".to_string()),
        ("region".to_string(), "eu-west-1".to_string()),
    ]);
    store.update_run(&r).unwrap();

    let reopened = StateStore::open(dir.path()).unwrap();
    assert_eq!(reopened.get_run(&r.id).unwrap(), Some(r.clone()));
    assert_eq!(reopened.get_run("0000000000nothere00").unwrap(), None);
}

#[test]
fn a_run_id_is_never_recorded_twice_and_unknown_runs_cannot_be_updated() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let r = run("01abc", "proj", "dev");
    store.insert_run(&r).unwrap();

    let mut clash = run("01abc", "proj", "other");
    clash.command = "something else".into();
    let err = store.insert_run(&clash).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.message().contains("01abc"), "{err}");
    assert_eq!(store.get_run("01abc").unwrap(), Some(r));

    let err = store.update_run(&run("01xyz", "proj", "dev")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("01xyz"), "{err}");
    assert_eq!(store.get_run("01xyz").unwrap(), None);
}

#[test]
fn a_run_is_found_by_any_unique_prefix_of_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    for id in ["01abc1", "01abc2", "01abd0", "02zzzz"] {
        store.insert_run(&run(id, "proj", "dev")).unwrap();
    }

    let found = |p: &str| store.get_run_by_prefix(p).unwrap().map(|r| r.id);
    assert_eq!(found("01abd").as_deref(), Some("01abd0"));
    assert_eq!(found("01abc2").as_deref(), Some("01abc2"));
    assert_eq!(found("02").as_deref(), Some("02zzzz"));
    assert_eq!(found("01abe"), None);
    assert_eq!(found("03"), None);
    assert_eq!(found("01abc2x"), None);

    let err = store.get_run_by_prefix("01ab").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.message().contains("ambiguous"), "{err}");
    for candidate in ["01abc1", "01abc2", "01abd0"] {
        assert!(err.message().contains(candidate), "{err}");
    }
    assert!(!err.message().contains("02zzzz"), "{err}");

    let err = store.get_run_by_prefix("").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

#[test]
fn runs_are_listed_newest_first_filtered_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    // Ids sort by creation time, so these were created in this order.
    let runs = [
        run("01a", "p1", "dev"),
        run("01b", "p1", "gpu"),
        run("01c", "p2", "dev"),
        run("01d", "p1", "dev"),
        run("01e", "p2", "gpu"),
    ];
    // Inserted out of order: order must come from the ids, not insertion.
    for i in [3, 0, 4, 1, 2] {
        store.insert_run(&runs[i]).unwrap();
    }
    let ids = |filter: RunFilter<'_>, limit: usize| -> Vec<String> {
        store
            .list_runs(&filter, limit)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(
        ids(RunFilter::default(), 100),
        ["01e", "01d", "01c", "01b", "01a"]
    );
    assert_eq!(ids(RunFilter::default(), 2), ["01e", "01d"]);
    let dev = RunFilter {
        environment: Some("dev"),
        ..RunFilter::default()
    };
    assert_eq!(ids(dev, 100), ["01d", "01c", "01a"]);
    let p1_dev = RunFilter {
        project: Some("p1"),
        environment: Some("dev"),
    };
    assert_eq!(ids(p1_dev, 100), ["01d", "01a"]);
    let p2 = RunFilter {
        project: Some("p2"),
        environment: None,
    };
    assert_eq!(ids(p2, 1), ["01e"]);

    assert_eq!(
        store.last_run("p1").unwrap().map(|r| r.id).as_deref(),
        Some("01d")
    );
    assert_eq!(store.last_run("p2").unwrap(), Some(runs[4].clone()));
    assert_eq!(store.last_run("p3").unwrap(), None);
}

#[test]
fn installed_extensions_are_recorded_replaced_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let ext = |name: &str, version: &str, validated: Option<i64>| InstalledExtension {
        project: "proj".into(),
        environment: "dev".into(),
        extension: name.into(),
        version: version.into(),
        installed_at: 1_700_000_000,
        validated_at: validated,
    };
    store.record_extension(&ext("rust", "1.95", None)).unwrap();
    store
        .record_extension(&ext("node", "22", Some(1_700_000_500)))
        .unwrap();
    store
        .record_extension(&InstalledExtension {
            environment: "prod".into(),
            ..ext("go", "1.24", None)
        })
        .unwrap();
    // A reinstall replaces the record.
    store
        .record_extension(&ext("rust", "1.96", Some(1_700_000_900)))
        .unwrap();

    let reopened = StateStore::open(dir.path()).unwrap();
    assert_eq!(
        reopened.extensions("proj", "dev").unwrap(),
        [
            ext("node", "22", Some(1_700_000_500)),
            ext("rust", "1.96", Some(1_700_000_900)),
        ]
    );
    assert!(reopened.remove_extension("proj", "dev", "node").unwrap());
    assert!(!reopened.remove_extension("proj", "dev", "node").unwrap());
    assert_eq!(
        reopened.extensions("proj", "dev").unwrap(),
        [ext("rust", "1.96", Some(1_700_000_900))]
    );
    assert_eq!(reopened.extensions("proj", "prod").unwrap().len(), 1);
    assert!(reopened.extensions("other", "dev").unwrap().is_empty());
}

#[test]
fn opening_creates_a_private_directory_and_a_wal_database() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("a/b/sindri");
    let store = StateStore::open(&state_dir).unwrap();
    assert_eq!(store.path(), state_dir.join(STATE_FILE_NAME));
    assert!(store.path().is_file());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "state directory mode is {mode:o}");
    }
    let conn = Connection::open(store.path()).unwrap();
    let journal: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(user_version(store.path()), SCHEMA_VERSION);
}

/// The schema as version 1 shipped it, written out here (not taken from the crate) so
/// the test keeps describing real old files even if the migration code changes.
const V1_SCHEMA: &str = "
    CREATE TABLE deployments (
        project TEXT NOT NULL, name TEXT NOT NULL, provider TEXT NOT NULL,
        resource_id TEXT, spec_hash TEXT NOT NULL, state TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL, PRIMARY KEY (project, name)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX deployments_by_name ON deployments (name);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, name TEXT NOT NULL,
        at INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL
    ) STRICT;
    CREATE INDEX events_by_deployment ON events (project, name, id);
    PRAGMA user_version = 1;
";

#[test]
fn a_version_1_file_is_migrated_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(V1_SCHEMA).unwrap();
        conn.execute(
            "INSERT INTO deployments VALUES ('proj', 'dev', 'docker', 'c0ffee', 'sha256:1', \
             'ready', '{\"container\":\"sindri-dev\"}', 1700000000, 1700000500)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO deployments VALUES ('proj', 'old', 'aws', NULL, 'sha256:2', \
             'stopped', '{}', 1600000000, 1600000000)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events (project, name, at, kind, message) \
             VALUES ('proj', 'dev', 1700000000, 'deploy', 'container created')",
            [],
        )
        .unwrap();
    }
    assert_eq!(user_version(&path), 1);

    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);

    let dev = store.get_deployment("proj", "dev").unwrap().unwrap();
    assert_eq!(dev.provider, ProviderKind::Docker);
    assert_eq!(dev.resource_id.as_deref(), Some("c0ffee"));
    assert_eq!(dev.state, DeploymentState::Ready);
    assert_eq!(dev.detail("container"), Some("sindri-dev"));
    assert_eq!(
        (dev.created_at, dev.updated_at),
        (1_700_000_000, 1_700_000_500)
    );
    assert_eq!(store.list_deployments().unwrap().len(), 2);
    let events = store.events("proj", "dev", 10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message, "container created");

    // The tables added after version 1 work, and new events continue the old ids.
    let r = RunRecord::new("proj", "dev", ProviderKind::Docker, "make test");
    store.insert_run(&r).unwrap();
    assert_eq!(store.last_run("proj").unwrap(), Some(r));
    let e = store
        .record_event("proj", "dev", "stop", "stopped")
        .unwrap();
    assert!(e.id > events[0].id);
    store
        .record_extension(&InstalledExtension {
            project: "proj".into(),
            environment: "dev".into(),
            extension: "python".into(),
            version: "3.12".into(),
            installed_at: 1,
            validated_at: None,
        })
        .unwrap();
    assert_eq!(store.extensions("proj", "dev").unwrap().len(), 1);
}

#[test]
fn a_file_from_a_newer_sindri_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(V1_SCHEMA).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();

    let err = StateStore::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    let message = err.message();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
        "{message}"
    );
    assert!(message.contains("not changed"), "{message}");
    assert!(
        err.hint().unwrap_or("").contains("upgrade sindri"),
        "{err:?}"
    );

    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was modified"
    );
    assert!(
        !dir.path().join(format!("{STATE_FILE_NAME}-wal")).exists(),
        "the file was switched to WAL mode"
    );
    assert_eq!(user_version(&path), SCHEMA_VERSION + 1);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE_NAME);
    let junk = "these are my notes, not a database\n".repeat(100);
    std::fs::write(&path, &junk).unwrap();

    let err = StateStore::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    let message = err.message();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("is not a sindri state database"),
        "{message}"
    );
    assert!(err.hint().unwrap_or("").contains("move"), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), junk);
}

#[test]
fn a_state_directory_that_cannot_be_created_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // Tests run as root, so permissions cannot make creation fail; a regular file
    // where a parent directory should be always does.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, "x").unwrap();
    let state_dir = blocker.join("sindri");

    let err = StateStore::open(&state_dir).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    let message = err.message();
    assert!(message.contains("cannot create"), "{message}");
    assert!(
        message.contains(&state_dir.display().to_string()),
        "{message}"
    );
    assert!(
        err.hint().unwrap_or("").contains("SINDRI_STATE_DIR"),
        "{err:?}"
    );
}

#[test]
fn a_value_written_by_a_newer_sindri_is_reported_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store.upsert_deployment(&deployment("proj", "dev")).unwrap();
    Connection::open(store.path())
        .unwrap()
        .execute(
            "UPDATE deployments SET provider = 'hetzner' WHERE name = 'dev'",
            [],
        )
        .unwrap();

    let err = store.get_deployment("proj", "dev").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.message().contains("`hetzner`"), "{err}");
    assert!(err.message().contains("proj/dev"), "{err}");
    assert!(
        err.message().contains(&store.path().display().to_string()),
        "{err}"
    );
    assert!(err.hint().unwrap_or("").contains("newer sindri"), "{err:?}");
}

#[test]
fn one_store_can_be_shared_by_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = &store;
            s.spawn(move || {
                for i in 0..50 {
                    store
                        .record_event("proj", "dev", "tick", &format!("{t}-{i}"))
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(store.events("proj", "dev", usize::MAX).unwrap().len(), 200);
}
