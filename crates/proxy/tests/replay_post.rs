//! `sipcti replay --post` delivers a capture's events to Zammad, in order,
//! through the live CTI client: checked against the Zammad double with the
//! project's recorded fixtures.

use std::path::Path;
use std::process::Command;

use sipcti_zammad_double::{spawn_double, DoubleConfig, Rules};

fn fields(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = [
        "event",
        "direction",
        "callId",
        "from",
        "to",
        "answeringNumber",
        "cause",
        "user",
    ]
    .iter()
    .filter_map(|k| v.get(*k).map(|x| (k.to_string(), x.to_string())))
    .collect();
    out.sort();
    out
}

#[test]
fn post_delivers_every_fixture_event_in_order() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/captures");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let double = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        spawn_double(
            l,
            DoubleConfig {
                token: "TOKEN".into(),
                rules: Rules::default(),
            },
        )
        .await
        .unwrap()
    });
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay-post");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut expected = Vec::new();
    for name in ["in-answered-udp", "out-answered-tcp", "cancel-udp"] {
        let dir = root.join(name);
        let cfg = std::fs::read_to_string(dir.join("sipcti.toml"))
            .unwrap()
            .replace("127.0.0.1:9", &double.local_addr().to_string());
        let cfg_path = tmp.join(format!("{name}.toml"));
        std::fs::write(&cfg_path, cfg).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sipcti"))
            .arg("replay")
            .arg(dir.join("capture.pcap"))
            .arg("--config")
            .arg(&cfg_path)
            .arg("--post")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: replay --post failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in std::fs::read_to_string(dir.join("expected.jsonl"))
            .unwrap()
            .lines()
        {
            expected.push(fields(&serde_json::from_str(line).unwrap()));
        }
    }
    let got: Vec<_> = double
        .log()
        .into_iter()
        .filter(|r| r.status == 200)
        .map(|r| fields(&serde_json::to_value(&r).unwrap()))
        .collect();
    assert_eq!(
        got, expected,
        "Zammad received exactly the fixtures' events, in order"
    );
    assert_eq!(
        double.log().len(),
        expected.len(),
        "no failed or repeated request"
    );
}
