//! The chaos campaign's trials (see chaos.rs): each builds its own namespace and story, kills the
//! operator as scheduled (or faults the control plane), then checks what happened exactly once.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use incident_operator::api::{ActionPhase, EscalationState, Incident};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client, api::ListParams};
use serde_json::{Value, json};

use crate::{
    chaos::Schedule,
    escalation::{pager, policy, schedule},
    lifecycle::setup,
    notifications::{DELIVERY, acknowledge, channel, resolve, secret},
    receiver::{Receiver, SECRET, delivered},
    remediation::{
        ROLLOUT, action, bad_deploy_history, create_rolled_out, deployment, request_actions,
        request_rollback, revisions,
    },
    support::{Operator, TestNamespace, kubeconfig_path, wait_for},
};

/// Kills per trial, each within this long of the (re)started operator being ready.
const KILLS: usize = 3;
const LONGEST_LIFE_MS: u64 = 2000;
/// The windows widened so that random kills land in them.
const SLOW: &str = "before-patch:1500,after-send:1500";
const INCIDENT: &str = "web-down";

#[derive(Clone, Copy, Debug)]
pub enum Scenario {
    /// A rollback, and the Opened/Acknowledged/Resolved messages of a P1 incident.
    Rollback,
    /// A restart and a scale on one incident, and its messages.
    RestartScale,
    /// Nobody acknowledges: primary, secondary and manager paged in turn.
    Escalation,
    /// Only the messages of a P1 incident (opened, acknowledged, resolved).
    Messages,
}

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// kube-apiserver stopped (SIGTERM) and started again with the same command line mid-incident.
    ApiServerRestart,
    /// etcd stopped (SIGSTOP) for 20 s mid-incident.
    EtcdPause,
}

/// One row of the campaign's table.
pub struct Trial {
    pub number: u64,
    pub what: String,
    /// Each kill: after how many ms, and the window it landed in.
    pub kills: Vec<(u64, &'static str)>,
    pub actions: String,
    pub messages: String,
    pub pages: String,
    pub incidents: usize,
}

impl fmt::Display for Trial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kills: Vec<String> = self
            .kills
            .iter()
            .map(|(ms, window)| format!("{ms} ms {window}"))
            .collect();
        write!(
            f,
            "| {} | {} | {} | {} | {} | {} | {} |",
            self.number,
            self.what,
            if kills.is_empty() {
                "-".into()
            } else {
                kills.join("; ")
            },
            self.actions,
            self.messages,
            self.pages,
            self.incidents
        )
    }
}

/// What the kills can disturb, and how to read where a kill landed.
struct Story {
    client: Client,
    ns: TestNamespace,
    api: Api<Incident>,
    receiver: Receiver,
    scenario: Scenario,
}

impl Story {
    async fn new(scenario: Scenario, number: u64) -> (Story, Operator) {
        let (client, ns, api) = setup(&format!("chaos-{number}")).await;
        let receiver = match scenario {
            Scenario::Escalation => {
                schedule(&client, &ns.name).await;
                policy(&client, &ns.name, "2s", 0, json!({})).await;
                pager(&client, &ns.name).await
            }
            _ => {
                let receiver = Receiver::start(Some(SECRET)).await;
                secret(&client, &ns.name, "hook", &receiver.url(), Some(SECRET)).await;
                channel(
                    &client,
                    &ns.name,
                    "pages",
                    "hook",
                    true,
                    json!({ "severities": ["P1"] }),
                )
                .await;
                let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
                if matches!(scenario, Scenario::Rollback) {
                    bad_deploy_history(&deployments, "web", 1).await;
                } else if matches!(scenario, Scenario::RestartScale) {
                    // Healthy: a restart's rollout completes.
                    let web = deployment("web", &["registry.local/web:1"], None);
                    create_rolled_out(&deployments, &web, ROLLOUT).await;
                }
                receiver
            }
        };
        let operator = start(&ns.name, scenario).await;
        match scenario {
            Scenario::Rollback => request_rollback(&api, INCIDENT, "web").await,
            Scenario::RestartScale => {
                let actions = json!([
                    { "name": "restart", "restart": { "deployment": "web" } },
                    { "name": "scale", "scale": { "deployment": "web", "replicas": 4 } } ]);
                request_actions(&api, INCIDENT, actions).await;
            }
            Scenario::Escalation => {
                crate::escalation::open(&api, INCIDENT, "P1", json!({})).await;
            }
            Scenario::Messages => crate::notifications::open(&api, INCIDENT, "P1").await,
        }
        let story = Story {
            client,
            ns,
            api,
            receiver,
            scenario,
        };
        (story, operator)
    }

    async fn deployment(&self) -> Option<Deployment> {
        Api::<Deployment>::namespaced(self.client.clone(), &self.ns.name)
            .get_opt("web")
            .await
            .expect("read the Deployment")
    }

    /// The window the state shows the (dead) operator was in.
    async fn landed(&self) -> &'static str {
        let incident = self.api.get(INCIDENT).await.expect("the incident");
        let web = self.deployment().await;
        let running =
            |name: &str| action(&incident, name).is_some_and(|a| a.phase == ActionPhase::Running);
        let unchanged = match self.scenario {
            Scenario::Rollback => {
                running("undo") && revisions(&self.client, &self.ns.name, "web").await == [1, 2, 3]
            }
            Scenario::RestartScale => {
                let template = web.as_ref().and_then(|d| d.spec.template.metadata.clone());
                let restarted = template
                    .and_then(|m| m.annotations)
                    .is_some_and(|a| a.contains_key("kubectl.kubernetes.io/restartedAt"));
                let replicas = web.as_ref().and_then(|d| d.spec.replicas);
                (running("restart") && !restarted) || (running("scale") && replicas != Some(4))
            }
            Scenario::Escalation | Scenario::Messages => false,
        };
        if unchanged {
            return "plan→patch";
        }
        let recorded: Vec<String> = incident
            .status
            .as_ref()
            .map(|s| {
                s.deliveries
                    .iter()
                    .filter(|d| d.state == incident_operator::api::DeliveryState::Sent)
                    .map(|d| d.key.clone())
                    .collect()
            })
            .unwrap_or_default();
        let sent = delivered(&self.receiver.received().await);
        if sent.iter().any(|(_, key)| !recorded.contains(key)) {
            return "send→record";
        }
        let climbing = incident
            .status
            .as_ref()
            .and_then(|s| s.escalation.as_ref())
            .is_some_and(|e| e.state == EscalationState::Climbing && e.steps > 0);
        if climbing {
            return "between levels";
        }
        "elsewhere"
    }

    /// People working while the operator is down: acknowledge after the first kill, resolve after
    /// the second (not in the escalation story, where nobody answers).
    async fn people(&self, kill: usize) {
        match (self.scenario, kill) {
            (Scenario::Escalation, _) => {}
            (_, 0) => acknowledge(&self.api, INCIDENT).await,
            (_, 1) => resolve(&self.api, INCIDENT).await,
            _ => {}
        }
    }

    /// Waits for the story's end and checks it happened exactly once; the table's cells.
    async fn check(&self, context: &str) -> (String, String, String, usize) {
        let incidents = self
            .api
            .list(&ListParams::default())
            .await
            .expect("list incidents")
            .items
            .len();
        assert_eq!(incidents, 1, "{context}: one incident, none lost or added");
        match self.scenario {
            Scenario::Escalation => {
                wait_for(&self.api, INCIDENT, "the climb ends", DELIVERY, |i| {
                    i.and_then(|i| i.status.as_ref()?.escalation.clone())
                        .is_some_and(|e| e.state == EscalationState::Exhausted)
                })
                .await;
                let received = self
                    .receiver
                    .wait_for("three pages", DELIVERY, |r| unique(r, "Paged").len() >= 3)
                    .await;
                let pages = unique(&received, "Paged");
                let people: Vec<String> = pages.iter().map(|(_, who)| who.clone()).collect();
                assert_eq!(
                    people,
                    ["alex", "sam", "casey"],
                    "{context}: each level once, in order"
                );
                let all = delivered(&received).len();
                (
                    "-".into(),
                    "-".into(),
                    format!(
                        "3 of 3 levels once, in order ({} repeated under their key)",
                        all - 3
                    ),
                    incidents,
                )
            }
            scenario => {
                let names: &[&str] = match scenario {
                    Scenario::Rollback => &["undo"],
                    Scenario::RestartScale => &["restart", "scale"],
                    _ => &[],
                };
                let done = wait_for(&self.api, INCIDENT, "every action finished", ROLLOUT, |i| {
                    i.is_some_and(|i| {
                        names
                            .iter()
                            .all(|n| action(i, n).is_some_and(|a| a.phase.is_terminal()))
                    })
                })
                .await
                .expect("the incident");
                for name in names {
                    let phase = action(&done, name).map(|a| a.phase);
                    assert_eq!(phase, Some(ActionPhase::Succeeded), "{context}: {name}");
                }
                // Rollback: revision 2 back as 4, once. Restart: one new revision (2), once.
                let want: &[i64] = match scenario {
                    Scenario::Rollback => &[1, 3, 4],
                    Scenario::RestartScale => &[1, 2],
                    _ => &[],
                };
                if !want.is_empty() {
                    let history = revisions(&self.client, &self.ns.name, "web").await;
                    assert_eq!(history, want, "{context}: each action applied once");
                }
                if names.contains(&"scale") {
                    let replicas = self.deployment().await.and_then(|d| d.spec.replicas);
                    assert_eq!(replicas, Some(4), "{context}");
                }
                let received = self
                    .receiver
                    .wait_for("opened, acknowledged and resolved", DELIVERY, |r| {
                        order(r).ends_with(&["Resolved".to_owned()])
                    })
                    .await;
                let seen = order(&received);
                assert_eq!(
                    seen,
                    ["Opened", "Acknowledged", "Resolved"],
                    "{context}: messages in order, none lost"
                );
                let mut keys: BTreeMap<String, String> = BTreeMap::new();
                for (event, key) in delivered(&received) {
                    let first = keys.entry(event.clone()).or_insert_with(|| key.clone());
                    assert_eq!(*first, key, "{context}: {event} sent under two keys");
                }
                let all = delivered(&received).len();
                let actions = if names.is_empty() {
                    "-".to_owned()
                } else {
                    format!("{} of {} once", names.len(), names.len())
                };
                (
                    actions,
                    format!("3 of 3 in order ({} repeated under their key)", all - 3),
                    "-".into(),
                    incidents,
                )
            }
        }
    }
}

/// Messages of `event` by key, first arrival each, as (key, person).
fn unique(received: &[Value], event: &str) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for r in received
        .iter()
        .filter(|r| r["answered"] == 200 && r["body"]["event"] == event)
    {
        let key = r["id"].as_str().unwrap_or_default().to_owned();
        if !seen.iter().any(|(k, _)| *k == key) {
            let who = r["body"]["recipient"]["name"]
                .as_str()
                .unwrap_or("-")
                .to_owned();
            seen.push((key, who));
        }
    }
    seen
}

/// The events delivered, each message (key) at its first arrival: a receiver drops the repeats a
/// kill between sending and recording causes by their key.
fn order(received: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (event, key) in delivered(received) {
        if !keys.contains(&key) {
            keys.push(key);
            seen.push(event);
        }
    }
    seen
}

/// The operator, its windows widened; the escalation story keeps its own (the wait between two
/// levels is the window there).
async fn start(ns: &str, scenario: Scenario) -> Operator {
    let slow = match scenario {
        Scenario::Escalation => "",
        _ => SLOW,
    };
    Operator::start_with_env(ns, &[], &[("INCIDENT_OPERATOR_SLOW", slow)]).await
}

impl Trial {
    /// A trial of `scenario` with [`KILLS`] SIGKILLs at the schedule's instants.
    pub async fn kills(number: u64, scenario: Scenario, schedule: &mut Schedule) -> Trial {
        let (story, mut operator) = Story::new(scenario, number).await;
        let mut kills = Vec::new();
        for kill in 0..KILLS {
            let life = schedule.next_ms(LONGEST_LIFE_MS);
            tokio::time::sleep(Duration::from_millis(life)).await;
            operator.kill().await;
            kills.push((life, story.landed().await));
            story.people(kill).await;
            operator = start(&story.ns.name, story.scenario).await;
        }
        let context = format!("trial {number} ({scenario:?}), kills {kills:?}");
        let (actions, messages, pages, incidents) = story.check(&context).await;
        operator.stop().await;
        Trial {
            number,
            what: format!("{scenario:?}"),
            kills,
            actions,
            messages,
            pages,
            incidents,
        }
    }

    /// A rollback trial whose control plane is faulted mid-incident instead of the operator.
    pub async fn fault(number: u64, fault: Fault) -> Trial {
        let (story, mut operator) = Story::new(Scenario::Rollback, number).await;
        let plane = ControlPlane::capture();
        let supervisor = plane.supervise();
        tokio::time::sleep(Duration::from_millis(300)).await;
        match fault {
            Fault::ApiServerRestart => restart_api_server(&story.client).await,
            Fault::EtcdPause => {
                let etcd = pid("etcd");
                signal("-STOP", &etcd);
                tokio::time::sleep(Duration::from_secs(20)).await;
                signal("-CONT", &etcd);
            }
        }
        // An operator that lost its lease while the API server was away exits: restarted, as its
        // Deployment would.
        let mut restarted = "kept running";
        if operator.child.try_wait().ok().flatten().is_some() {
            operator = start(&story.ns.name, story.scenario).await;
            restarted = "exited and was restarted";
        }
        story.people(0).await;
        story.people(1).await;
        let context = format!("trial {number} ({fault:?})");
        let (actions, messages, pages, incidents) = story.check(&context).await;
        supervisor.abort();
        operator.stop().await;
        Trial {
            number,
            what: format!("{fault:?} (operator {restarted})"),
            kills: Vec::new(),
            actions,
            messages,
            pages,
            incidents,
        }
    }
}

/// The e2e cluster's kwok working directory and name (next to its kubeconfig).
fn cluster() -> (PathBuf, String) {
    let workdir = kubeconfig_path()
        .parent()
        .expect("the kubeconfig's directory")
        .join("kwok");
    let name = std::fs::read_dir(workdir.join("clusters"))
        .expect("the kwok clusters directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("one cluster");
    (workdir, name)
}

/// The local control plane's processes as kwokctl started them, to start one again the same way
/// (command line, working directory; log appended, pid file updated) as a kubelet or systemd would.
#[derive(Clone)]
struct ControlPlane(Vec<(&'static str, Vec<String>, PathBuf)>);

const COMPONENTS: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
];

impl ControlPlane {
    fn capture() -> ControlPlane {
        ControlPlane(
            COMPONENTS
                .iter()
                .map(|component| {
                    let proc = PathBuf::from(format!("/proc/{}", pid(component)));
                    let argv = std::fs::read(proc.join("cmdline"))
                        .unwrap_or_else(|e| panic!("{component}'s command line: {e}"))
                        .split(|b| *b == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect();
                    let cwd = std::fs::read_link(proc.join("cwd")).expect("its working directory");
                    (*component, argv, cwd)
                })
                .collect(),
        )
    }

    fn alive(component: &str) -> bool {
        PathBuf::from(format!("/proc/{}", pid(component))).exists()
    }

    fn launch(&self, component: &str) {
        let (workdir, name) = cluster();
        let dir = workdir.join(format!("clusters/{name}"));
        let Some((_, argv, cwd)) = self.0.iter().find(|(c, ..)| *c == component) else {
            return;
        };
        // In the background of a shell that ends at once, in its own session: it outlives this
        // test, as the cluster does.
        let started = std::process::Command::new("sh")
            .args([
                "-c",
                r#"log="$1"; shift; setsid "$@" </dev/null >>"$log" 2>&1 & echo $!"#,
                "sh",
            ])
            .arg(dir.join(format!("logs/{component}.log")))
            .args(argv)
            .current_dir(cwd)
            .output()
            .expect("start a component again");
        let new = String::from_utf8_lossy(&started.stdout).trim().to_owned();
        assert!(started.status.success() && !new.is_empty(), "{started:?}");
        std::fs::write(dir.join(format!("pids/{component}.pid")), &new).expect("its pid file");
    }

    /// Starts again whatever of it has exited (controllers that lost their leases while the API
    /// server was away exit), until the returned task is aborted.
    fn supervise(&self) -> tokio::task::JoinHandle<()> {
        let plane = self.clone();
        tokio::spawn(async move {
            loop {
                for component in COMPONENTS {
                    if !ControlPlane::alive(component) {
                        plane.launch(component);
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    }
}

/// Stops kube-apiserver (SIGTERM); the supervisor starts it again; waits until it serves.
async fn restart_api_server(client: &Client) {
    let old = pid("kube-apiserver");
    signal("-TERM", &old);
    while pid("kube-apiserver") == old {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let deadline = std::time::Instant::now() + DELIVERY;
    while namespaces.get_opt("default").await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "kube-apiserver serves again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pid(component: &str) -> String {
    let (workdir, name) = cluster();
    std::fs::read_to_string(workdir.join(format!("clusters/{name}/pids/{component}.pid")))
        .expect("the component's pid file")
        .trim()
        .to_owned()
}

fn signal(which: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([which, pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid}");
}
