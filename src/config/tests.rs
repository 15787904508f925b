//! Flags and the configuration file into Settings: leader election, shards.

use super::*;

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn run_args(flags: &[&str]) -> RunArgs {
    use clap::Parser;
    Cli::try_parse_from(std::iter::once("run").chain(flags.iter().copied()))
        .expect("valid flags")
        .run
}

#[test]
fn leader_election_is_off_unless_asked_for() {
    let settings = run_args(&[]).settings().expect("settings");
    assert_eq!(settings.leader, None);
}

#[test]
fn leader_election_flags_set_the_lease_and_its_timings() {
    let settings = run_args(&[
        "--leader-elect",
        "true",
        "--leader-election-namespace",
        "ops",
        "--leader-election-name",
        "io-lock",
        "--leader-election-lease-duration",
        "20s",
    ])
    .settings()
    .expect("settings");
    let leader = settings.leader.expect("leader election on");
    assert_eq!(
        (leader.namespace.as_str(), leader.name.as_str()),
        ("ops", "io-lock")
    );
    assert_eq!(leader.lease_duration, Duration::from_secs(20));
    assert_eq!(leader.renew_deadline, Duration::from_secs(5));
    assert_eq!(leader.retry_period, Duration::from_secs(2));
    assert!(!leader.identity.is_empty());
}

#[test]
fn leader_election_timings_that_could_overlap_are_a_configuration_error() {
    let error = run_args(&[
        "--leader-elect",
        "true",
        "--leader-election-lease-duration",
        "4s",
    ])
    .settings()
    .expect_err("renew deadline 5s >= lease 4s");
    assert!(error.to_string().contains("renew deadline"), "{error}");
}

fn settings_with_file(text: &str, flags: &[&str]) -> Result<Settings> {
    let dir = std::env::temp_dir().join(format!("incident-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{:x}.yaml", text.len() * 31 + flags.len()));
    std::fs::write(&path, text).expect("write config");
    let path = path.to_string_lossy().into_owned();
    let mut all = vec!["--config", path.as_str()];
    all.extend(flags);
    let settings = run_args(&all).settings();
    let _ = std::fs::remove_file(&path);
    settings
}

#[test]
fn leader_election_comes_from_the_file_and_flags_win() {
    let file = "leaderElection:\n  enabled: true\n  name: io-lock\n  namespace: ops\n  leaseDuration: 30s\n  renewDeadline: 20s\n";
    let leader = settings_with_file(file, &[])
        .expect("settings")
        .leader
        .expect("on from the file");
    assert_eq!(
        (leader.namespace.as_str(), leader.name.as_str()),
        ("ops", "io-lock")
    );
    assert_eq!(leader.lease_duration, Duration::from_secs(30));
    assert_eq!(leader.renew_deadline, Duration::from_secs(20));
    assert_eq!(leader.retry_period, Duration::from_secs(2));

    let flags = [
        "--leader-election-name",
        "other",
        "--leader-election-renew-deadline",
        "10s",
    ];
    let leader = settings_with_file(file, &flags)
        .expect("settings")
        .leader
        .expect("on");
    assert_eq!(leader.name, "other");
    assert_eq!(leader.renew_deadline, Duration::from_secs(10));
    let off = settings_with_file(file, &["--leader-elect", "false"]).expect("settings");
    assert_eq!(off.leader, None, "the flag switches it off over the file");
}

#[test]
fn leader_election_mistakes_in_the_file_are_all_named() {
    let file = "leaderElection:\n  enabled: true\n  name: Io_Lock\n  leaseDuration: soon\n  retryPeriod: 9s\n";
    let error = settings_with_file(file, &[]).expect_err("three mistakes");
    let message = error.to_string();
    for path in [
        "leaderElection.name",
        "leaderElection.leaseDuration",
        "retry period",
    ] {
        assert!(message.contains(path), "{path} missing from: {message}");
    }
    let unknown =
        settings_with_file("leaderElection:\n  leaseSeconds: 10\n", &[]).expect_err("unknown key");
    assert!(unknown.to_string().contains("leaseSeconds"), "{unknown}");
}

#[test]
fn identities_carry_the_process_id() {
    let id = identity();
    assert!(id.contains(&format!("_{}_", std::process::id())), "{id}");
}

#[test]
fn a_shard_names_its_own_lease() {
    let settings = run_args(&[
        "--shard",
        "1/3",
        "--leader-elect",
        "true",
        "--leader-election-name",
        "io",
    ])
    .settings()
    .expect("settings");
    assert_eq!(
        settings.shard.map(|s| s.to_string()).as_deref(),
        Some("1/3")
    );
    assert_eq!(settings.leader.expect("on").name, "io-shard-1-of-3");
}

#[test]
fn shards_and_selectors_need_all_namespaces() {
    let error = run_args(&[
        "--shard",
        "0/2",
        "--namespace-selector",
        "a=b",
        "--namespace",
        "shop",
    ])
    .settings()
    .expect_err("one namespace cannot be split");
    let message = error.to_string();
    assert!(
        message.contains("--shard 0/2 splits all namespaces"),
        "{message}"
    );
    assert!(
        message.contains("--namespace-selector chooses among all"),
        "{message}"
    );
}

#[test]
fn a_shard_out_of_range_is_refused_by_the_flag_parser() {
    use clap::Parser;
    for bad in ["2/2", "0/0", "x"] {
        let refused = Cli::try_parse_from(["run", "--shard", bad]);
        assert!(refused.is_err(), "--shard {bad} must be refused");
    }
}
