//! The status page in a real browser: Debian's headless Chromium driven through chromedriver by
//! fantoccini (WebDriver). The page renders the components and the published incident within
//! seconds, never the internal title, shows a new public update after its own meta refresh (the
//! test never reloads), and has no horizontal scroll in a phone's viewport. The screenshot of the
//! page with an open incident goes to INCIDENT_E2E_SCREENSHOT when set (docs/status-page.png).

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use fantoccini::{Client as Browser, ClientBuilder, wd::Capabilities};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::{
    plugin::ok,
    status_page::{PageOperator, create_incident, create_page},
    support::{TestNamespace, client, free_addr, install_crds},
};

/// Chromium and chromedriver, from hack/browser.sh (which installs Debian's packages if needed).
fn binaries() -> (String, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/browser.sh");
    let output = std::process::Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        output.status.success(),
        "{script} failed (its message is above): the browser tests need Debian's chromium and \
         chromium-driver (apt-get install chromium chromium-driver), or INCIDENT_E2E_CHROMIUM and \
         INCIDENT_E2E_CHROMEDRIVER"
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(chromium), Some(driver)) => (chromium.to_owned(), driver.to_owned()),
        _ => panic!("{script} printed {text:?}, not the two paths"),
    }
}

/// A headless Chromium session; chromedriver is killed and the profile removed when dropped.
pub struct Chromium {
    pub browser: Browser,
    _driver: Child,
    profile: PathBuf,
}

impl Chromium {
    /// A window of `width` x `height`; with `phone`, a phone's viewport of that size (device
    /// emulation: headless windows are at least 500 pixels wide).
    pub async fn start(width: u32, height: u32, phone: bool) -> Self {
        let (chromium, driver_path) = binaries();
        let port: SocketAddr = free_addr();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={}", port.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {driver_path}: {e}"));
        let profile = std::env::temp_dir().join(format!(
            "incident-e2e-chromium-{}-{}",
            std::process::id(),
            port.port()
        ));
        let capabilities: Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        }))
        .expect("capabilities");
        let mut capabilities = capabilities;
        if phone && let Some(Value::Object(options)) = capabilities.get_mut("goog:chromeOptions") {
            options.insert(
                "mobileEmulation".to_owned(),
                json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2.0, "mobile": true } }),
            );
        }
        let url = format!("http://{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let browser = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(browser) => break browser,
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "no Chromium session from {driver_path} within 30s: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Self {
            browser,
            _driver: driver,
            profile,
        }
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.browser
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.eval("return document.body ? document.body.innerText : '';")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the visible text contains `needle` (the page reloading itself meanwhile).
    pub async fn await_text(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {needle:?} within {within:?}; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn close(self) {
        let Chromium {
            browser, profile, ..
        } = self;
        let _ = browser.close().await;
        let _ = std::fs::remove_dir_all(profile);
    }
}

#[tokio::test]
async fn the_page_renders_the_incident_refreshes_itself_and_fits_a_phone() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "status-browser").await;
    create_page(&client, &ns.name).await;
    create_incident(&client, &ns.name, "slow-checkout").await;
    let page = PageOperator::start(&ns.name, &["--status-page-refresh", "5"]).await;
    ok(
        &ns.name,
        &[
            "publish",
            "slow-checkout",
            "--title",
            "Checkout is slow",
            "--component",
            "checkout",
            "--impact",
            "major",
        ],
    )
    .await;
    ok(
        &ns.name,
        &[
            "update",
            "slow-checkout",
            "--public",
            "We are investigating slow checkouts",
            "--status",
            "investigating",
        ],
    )
    .await;
    page.await_json("/api/v2/summary.json", "the update", |s| {
        s["incidents"][0]["incident_updates"][0]["body"] == "We are investigating slow checkouts"
    })
    .await;

    let chromium = Chromium::start(1100, 1300, false).await;
    chromium
        .browser
        .goto(&page.url("/"))
        .await
        .expect("open the status page");
    let text = chromium
        .await_text(
            "We are investigating slow checkouts",
            Duration::from_secs(10),
        )
        .await;
    for shown in [
        "Shop status",
        "Partial System Outage",
        "Checkout is slow",
        "Checkout",
        "Search",
        "Partial outage",
        "Operational",
    ] {
        assert!(text.contains(shown), "{shown:?} missing from:\n{text}");
    }
    let source = chromium.browser.source().await.expect("page source");
    for internal in [
        "db pool exhausted",
        "payments-db-0",
        "password rotation",
        "slow-checkout",
    ] {
        assert!(
            !source.contains(internal),
            "{internal:?} is on the public page"
        );
    }
    // Semantic, and nothing for a script to do.
    let structure = chromium
        .eval("return [document.documentElement.lang, document.querySelectorAll('main').length, document.querySelectorAll('h1').length, document.querySelectorAll('[role=status]').length, document.scripts.length];")
        .await;
    assert_eq!(structure, json!(["en", 1, 1, 1, 0]));
    let png = chromium.browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if let Some(path) = std::env::var_os("INCIDENT_E2E_SCREENSHOT") {
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    }

    // A new update shows after the page's own refresh; the test never reloads it.
    ok(
        &ns.name,
        &[
            "update",
            "slow-checkout",
            "--public",
            "A fix is being rolled out",
            "--status",
            "identified",
        ],
    )
    .await;
    let text = chromium
        .await_text("A fix is being rolled out", Duration::from_secs(30))
        .await;
    assert!(text.contains("Identified"), "{text}");
    chromium.close().await;

    // A phone's viewport: everything wraps, nothing scrolls sideways.
    let phone = Chromium::start(360, 780, true).await;
    phone
        .browser
        .goto(&page.url("/"))
        .await
        .expect("open the status page");
    phone
        .await_text("A fix is being rolled out", Duration::from_secs(10))
        .await;
    let widths = phone
        .eval("return [window.innerWidth, document.documentElement.scrollWidth, document.documentElement.clientWidth];")
        .await;
    let widths: Vec<i64> = widths
        .as_array()
        .expect("widths")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert!(
        widths[0] <= 400,
        "the viewport is not a phone's: {widths:?}"
    );
    assert!(
        widths[1] <= widths[2],
        "the page scrolls sideways on a phone: {widths:?}"
    );
    phone.close().await;
    page.operator.stop().await;
}
