//! Remote tuning against the in-memory fake: the REPORT numbers, the calls,
//! and the cleanup after success, failure and interruption.

use std::collections::BTreeMap;

use super::*;
use crate::aws::fake::FakeAws;
use crate::aws::{Code, CreateFunction};

async fn deployed(api: &FakeAws) {
    let settings = Settings {
        runtime: "provided.al2023".into(),
        architecture: "x86_64".into(),
        memory: 256,
        timeout: 30,
        ephemeral_storage: 512,
        role: "arn:aws:iam::123456789012:role/r".into(),
        ..Default::default()
    };
    api.create_function(&CreateFunction {
        name: "f".into(),
        settings,
        code: Code::Zip(b"zip".to_vec()),
        description: String::new(),
        tags: BTreeMap::new(),
    })
    .await
    .unwrap();
    api.wait_active("f").await.unwrap();
    // The user's own alias on the user's own version, never touched.
    let v = api.publish_version("f", "", None, "mine").await.unwrap();
    api.create_alias("f", "live", &v.version, &BTreeMap::new())
        .await
        .unwrap();
}

fn opts() -> TuneOptions {
    TuneOptions {
        memories: vec![128, 1024, 1769, 3008],
        invocations: 3,
        ..Default::default()
    }
}

fn ui() -> Ui {
    Ui::new(
        true,
        0,
        crate::ui::ColorChoice::Never,
        crate::ui::OutputFormat::Human,
    )
}

#[tokio::test]
async fn remote_measures_each_size_and_leaves_nothing_behind() {
    let api = FakeAws::new();
    deployed(&api).await;
    api.set_cpu_work_ms(200.0);
    api.clear_calls();
    let report = remote(&api, "f", &opts(), std::future::pending(), &ui())
        .await
        .unwrap();
    assert_eq!(report.mode, "remote");
    let means: Vec<f64> = report.points.iter().map(|p| p.trimmed_mean_ms).collect();
    // The fake's model: 200 ms at one vCPU, proportionally slower below.
    assert!(
        (means[0] - 200.0 * 1769.0 / 128.0).abs() < 0.01,
        "{means:?}"
    );
    assert!(
        (means[2] - 200.0).abs() < 0.01 && (means[3] - 200.0).abs() < 0.01,
        "{means:?}"
    );
    // Billed from REPORT; the cold first call is left out by default.
    assert!(
        report
            .points
            .iter()
            .all(|p| p.cold_starts == 0 && p.invocations == 3)
    );
    assert_eq!(report.pick(Strategy::Speed).unwrap().memory_mb, 1769);
    // At one vCPU and beyond, 1,769 MB is the cheapest that is that fast.
    assert_eq!(report.pick(Strategy::Cost).unwrap().memory_mb, 1769);

    let calls = api.calls();
    let count = |op: &str| calls.iter().filter(|c| *c == op).count();
    assert_eq!(count("lambda:PublishVersion"), 4);
    assert_eq!(count("lambda:CreateAlias"), 1);
    assert_eq!(count("lambda:UpdateAlias"), 3);
    assert_eq!(count("lambda:InvokeFunction"), 4 * 4);
    assert_eq!(count("lambda:DeleteAlias"), 1);
    assert_eq!(count("lambda:DeleteFunction"), 4);
    // Restored; only the user's version and alias are left.
    assert_eq!(api.latest("f").unwrap().settings.memory, 256);
    assert_eq!(api.version_count("f"), 1);
    assert_eq!(api.aliases("f"), vec!["live".to_string()]);
}

#[tokio::test]
async fn a_failure_half_way_still_cleans_up() {
    let api = FakeAws::new();
    deployed(&api).await;
    api.fail_next("lambda:InvokeFunction", "ServiceException", "boom");
    let err = remote(&api, "f", &opts(), std::future::pending(), &ui())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("removed"), "{err:#}");
    assert_eq!(api.latest("f").unwrap().settings.memory, 256);
    assert_eq!(api.version_count("f"), 1);
    assert_eq!(api.aliases("f"), vec!["live".to_string()]);
}

#[tokio::test]
async fn an_interruption_still_cleans_up() {
    let api = FakeAws::new();
    deployed(&api).await;
    // Ctrl-C after the first size was set up and measured.
    let interrupt = async {
        while !api.calls().iter().any(|c| c == "lambda:InvokeFunction") {
            tokio::task::yield_now().await;
        }
    };
    let err = remote(&api, "f", &opts(), interrupt, &ui())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("interrupted"), "{err:#}");
    assert_eq!(api.latest("f").unwrap().settings.memory, 256);
    assert_eq!(api.version_count("f"), 1);
    assert_eq!(api.aliases("f"), vec!["live".to_string()]);
}

#[tokio::test]
async fn another_architecture_is_refused_before_any_change() {
    let api = FakeAws::new();
    deployed(&api).await;
    api.clear_calls();
    let mut o = opts();
    o.archs = vec![Arch::Arm64];
    let err = remote(&api, "f", &o, std::future::pending(), &ui())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("deployed for x86_64"),
        "{err:#}"
    );
    assert_eq!(api.calls(), vec!["lambda:GetFunction".to_string()]);
}

#[test]
fn weighted_payloads_come_in_a_fixed_mix() {
    let o = TuneOptions {
        payloads: vec![
            Payload {
                body: b"a".to_vec(),
                weight: 3,
            },
            Payload {
                body: b"b".to_vec(),
                weight: 1,
            },
        ],
        ..Default::default()
    };
    let seq: Vec<&[u8]> = (0..8).map(|i| o.payload(i)).collect();
    assert_eq!(
        seq,
        vec![b"a" as &[u8], b"a", b"a", b"b", b"a", b"a", b"a", b"b"]
    );
}

#[test]
fn out_of_range_values_are_refused_by_name() {
    let mut o = opts();
    o.memories = vec![64];
    assert!(
        o.validate()
            .unwrap_err()
            .to_string()
            .contains("--memory 64")
    );
    let mut o = opts();
    o.weight = 2.0;
    assert!(o.validate().unwrap_err().to_string().contains("--weight 2"));
}

#[test]
fn html_is_self_contained() {
    let points = vec![
        stats::point(
            Arch::X86_64,
            128,
            &[Sample {
                duration_ms: 100.0,
                billed_ms: 100,
                init_ms: None,
                max_memory_mb: 20,
                error: false,
            }],
        ),
        stats::point(
            Arch::Arm64,
            128,
            &[Sample {
                duration_ms: 120.0,
                billed_ms: 120,
                init_ms: None,
                max_memory_mb: 20,
                error: false,
            }],
        ),
    ];
    let r = TuneReport::new("f", "local", "Local estimate <x>".into(), points, 0.5);
    let page = html(&r);
    assert!(page.contains("<svg") && page.contains("polyline"));
    assert!(page.contains("Local estimate &lt;x&gt;"));
    // Nothing fetched: no scripts, no external references.
    assert!(!page.contains("<script") && !page.contains("https://") && !page.contains("src="));
}

#[test]
fn the_report_is_saved_as_html_and_json_and_replaced_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let sample = |ms: f64| Sample {
        duration_ms: ms,
        billed_ms: ms.ceil() as u64,
        init_ms: None,
        max_memory_mb: 20,
        error: false,
    };
    let first = TuneReport::new(
        "f",
        "local",
        "Local estimate".into(),
        vec![stats::point(Arch::X86_64, 128, &[sample(100.0)])],
        0.5,
    );
    let html_path = write_report(&first, dir.path()).unwrap();
    assert_eq!(html_path, dir.path().join("f").join(HTML_FILE));
    let json_path = dir.path().join("f").join(JSON_FILE);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(saved["function"], "f");
    assert_eq!(saved["mode"], "local");
    assert_eq!(saved["points"][0]["memory_mb"], 128);
    assert_eq!(saved["points"][0]["arch"], "x86_64");
    assert_eq!(saved["picks"]["cost"], 0);

    let second = TuneReport::new(
        "f",
        "local",
        "Local estimate".into(),
        vec![
            stats::point(Arch::X86_64, 256, &[sample(40.0)]),
            stats::point(Arch::X86_64, 512, &[sample(20.0)]),
        ],
        0.5,
    );
    write_report(&second, dir.path()).unwrap();
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(
        saved["points"].as_array().unwrap().len(),
        2,
        "the last run wins"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path().join("f"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
}

#[test]
fn local_sizes_are_measured_in_turns_each_round_reversing_the_last() {
    let rounds: Vec<Vec<usize>> = (0..4).map(|r| turn_order(r, 3)).collect();
    assert_eq!(
        rounds,
        vec![vec![0, 1, 2], vec![2, 1, 0], vec![0, 1, 2], vec![2, 1, 0]]
    );
}

#[test]
fn the_label_says_when_the_load_makes_the_estimate_unreliable() {
    let opts = TuneOptions::default();
    let load = |wall_ms, waited_ms| Load {
        wall_ms,
        waited_ms,
        unmeasured: 0,
    };
    assert_eq!(load(1000.0, 5.0).note(&opts), "");
    let some = load(1000.0, 100.0).note(&opts);
    assert!(
        some.contains("Corrected for this machine's load: 10%"),
        "{some}"
    );
    let busy = load(1000.0, 400.0).note(&opts);
    assert!(
        busy.contains("UNRELIABLE") && busy.contains("40%"),
        "{busy}"
    );
    let blind = Load {
        unmeasured: 3,
        ..Load::default()
    };
    assert!(
        blind.note(&opts).contains("not taken out"),
        "{}",
        blind.note(&opts)
    );
}
