//! The admin page in a real headless browser: Debian's chromium, driven through its
//! chromedriver by fantoccini. It loads, shows a lock the test takes (with its token), and
//! removes it when the test releases it.
//!
//! Skipped, saying so, where chromium or chromedriver is not installed (scripts/test installs
//! them in CI). With `NLOCK_SCREENSHOT=path` it also saves a screenshot of the page there
//! (docs/admin-page.png in the README comes from it).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use nlock::LockOptions;

use crate::app::{spawn_get, start};
use crate::fixture::{waiting_on, Env, PATIENCE};
use crate::harness::must_eventually;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver on a loopback port; killed on drop.
struct Driver {
    _child: tokio::process::Child,
    url: String,
    /// The browser's fresh profile directory, removed on drop.
    profile: tempfile::TempDir,
}

async fn start_driver() -> Driver {
    // A free port: bound, read back and released for chromedriver to take.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let status = format!("{url}/status");
    must_eventually(PATIENCE, "chromedriver answers", || async {
        match crate::app::client().get(&status).send().await {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    })
    .await;
    Driver {
        _child: child,
        url,
        profile: tempfile::tempdir().unwrap(),
    }
}

async fn browser(driver: &Driver) -> fantoccini::Client {
    browser_at(driver, 1000).await
}

/// A session whose window (and so its viewport, headless) is `width` px wide.
async fn browser_at(driver: &Driver, width: u32) -> fantoccini::Client {
    let profile = driver.profile.path().display().to_string();
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--user-data-dir={profile}"),
        format!("--window-size={width},640"),
    ])
    .collect::<Vec<_>>();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": CHROMIUM, "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

#[actix_web::test]
async fn the_admin_page_shows_a_lock_live_and_removes_it_on_release() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!(
            "SKIPPED the admin page browser test: {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let ts = start(manager.clone()).await;
    let driver = start_driver().await;
    let page = browser(&driver).await;

    page.goto(&ts.url("/admin/")).await.unwrap();
    // Loaded, and its event stream is open (the page says "live" on the stream's open).
    let status = page
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css("#status"))
        .await
        .unwrap();
    must_eventually(PATIENCE, "the page's event stream is live", || async {
        status.text().await.unwrap() == "live"
    })
    .await;

    let options = LockOptions::default().description("closing day 2026-11-28");
    let lock = manager
        .lock("billing.close-day")
        .options(options)
        .acquire()
        .await
        .unwrap();
    let row = format!(
        "tr[data-key=\"billing.close-day\"][data-token=\"{}\"]",
        lock.token()
    );
    // The page redraws its rows every 250 ms (the bars move), so an element found in one
    // draw may be gone by the next command: each check finds the row afresh.
    must_eventually(
        PATIENCE,
        "the page shows the lock the test took, with its token, description and bar",
        || async {
            let Ok(shown) = page.find(Locator::Css(&row)).await else {
                return false;
            };
            let text = shown.text().await.unwrap_or_default();
            // Its time left is drawn as a bar.
            let bar = shown.find(Locator::Css(".bar > div")).await.is_ok();
            text.contains("closing day 2026-11-28") && bar
        },
    )
    .await;

    if let Ok(path) = std::env::var("NLOCK_SCREENSHOT") {
        // A fuller picture for the README: a request holding a lock, and one waiting.
        let _reindex = manager.acquire("search.reindex", None).await.unwrap();
        let held = spawn_get(ts.url("/wait/orders.42"));
        must_eventually(PATIENCE, "a request holds wait.orders.42", || async {
            ts.probe.entered().len() == 1
        })
        .await;
        let queued = spawn_get(ts.url("/wait/orders.42"));
        must_eventually(PATIENCE, "a second request waits", || async {
            waiting_on(&manager, "wait.orders.42").await == 1
        })
        .await;
        let waiting = Locator::XPath("//table[@id='waiting']//td[text()='wait.orders.42']");
        page.wait()
            .at_most(PATIENCE)
            .for_element(waiting)
            .await
            .unwrap();
        // Let the bars move a little from full.
        tokio::time::sleep(Duration::from_millis(700)).await;
        std::fs::write(&path, page.screenshot().await.unwrap()).unwrap();
        ts.probe.gate.add_permits(2);
        held.await.unwrap();
        queued.await.unwrap();
    }

    lock.release().await.unwrap();
    must_eventually(PATIENCE, "the page removes the released lock", || async {
        page.find(Locator::Css(&row)).await.is_err()
    })
    .await;
    page.close().await.unwrap();
}

#[actix_web::test]
async fn the_admin_page_shows_the_leader_live_through_a_handover() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!("SKIPPED the leaders browser test: {CHROMIUM} or {CHROMEDRIVER} is missing");
        return;
    }
    use crate::leader::{elect, leads, serve, KEY};
    let env = Env::start().await;
    let (ma, mb) = (
        env.manager(env.config()).await,
        env.manager(env.config()).await,
    );
    let a = elect(&ma, "a");
    let (addr, handle) = serve(nlock::web::WebLocks::new(ma.clone()), &a);
    let driver = start_driver().await;
    let page = browser(&driver).await;
    page.goto(&format!("http://{addr}/admin/")).await.unwrap();

    // Each check finds the row afresh: the page redraws on every change.
    let shows = |who: &'static str, token: u64| {
        let row = format!(
            "#leaders tr[data-key=\"{KEY}\"][data-identity=\"{who}\"][data-token=\"{token}\"]"
        );
        let page = page.clone();
        async move {
            must_eventually(
                PATIENCE,
                &format!("the page shows {who} leading"),
                || async {
                    let Ok(shown) = page.find(Locator::Css(&row)).await else {
                        return false;
                    };
                    shown.is_displayed().await.unwrap_or(false)
                },
            )
            .await;
        }
    };
    let a_token = leads(&a).await;
    shows("a", a_token).await;
    // The bucket table names the term's candidate and its metadata, not the raw record.
    let term_row = format!("#bucket tr[data-key=\"{KEY}\"][data-token=\"{a_token}\"] td.holder");
    must_eventually(PATIENCE, "the bucket row names leader a", || async {
        let Ok(cell) = page.find(Locator::Css(&term_row)).await else {
            return false;
        };
        let text = cell.text().await.unwrap_or_default();
        assert!(!text.contains('{'), "raw record shown: {text}");
        text.starts_with("leader a (who a)")
    })
    .await;

    let b = elect(&mb, "b");
    a.resign(Duration::from_secs(60)).await;
    let b_token = leads(&b).await;
    shows("b", b_token).await;

    page.close().await.unwrap();
    handle.stop(false).await;
    b.shutdown().await;
    a.shutdown().await;
}

/// Whether the cell at `selector` draws its content on one line: every box of it (the bar,
/// each fragment of the text) overlaps the first vertically. `null` while the cell is not
/// drawn. One script, so the page's redraw every 250 ms cannot replace the cell mid-check.
const ONE_LINE: &str = r#"
const td = document.querySelector(arguments[0]);
if (!td) return null;
const range = document.createRange();
range.selectNodeContents(td);
const boxes = Array.from(range.getClientRects()).filter(r => r.width > 0 && r.height > 0);
if (boxes.length === 0) return null;
const first = boxes[0];
return {
  one_line: boxes.every(r => r.top < first.bottom && r.bottom > first.top),
  text: td.textContent,
  viewport: window.innerWidth,
};
"#;

#[actix_web::test]
async fn the_time_left_stays_on_one_line_at_1200_px() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!("SKIPPED the time-left browser test: {CHROMIUM} or {CHROMEDRIVER} is missing");
        return;
    }
    let env = Env::start().await;
    let manager = env.manager(env.config()).await;
    let ts = start(manager.clone()).await;
    let driver = start_driver().await;
    let page = browser_at(&driver, 1200).await;
    page.goto(&ts.url("/admin/")).await.unwrap();

    // A holder with a description of ordinary length leaves the time-left column its
    // narrowest width: what an operator sees with a few locks.
    let options = LockOptions::default()
        .description("nightly close of accounts, batch 2026-11-28, started by cron on ops-1");
    let lock = manager
        .lock("billing.close-day")
        .options(options)
        .acquire()
        .await
        .unwrap();
    let cell = format!(
        "#bucket tr[data-key=\"billing.close-day\"][data-token=\"{}\"] td.left",
        lock.token()
    );
    let last = std::sync::Mutex::new(serde_json::Value::Null);
    must_eventually(PATIENCE, "the page draws the lock's time left", || async {
        let shown = page
            .execute(ONE_LINE, vec![serde_json::json!(cell)])
            .await
            .unwrap();
        let drawn = shown["text"].as_str().is_some_and(|t| t.ends_with(" s"));
        *last.lock().unwrap() = shown;
        drawn
    })
    .await;
    let shown = last.into_inner().unwrap();
    assert_eq!(shown["viewport"], 1200, "{shown}");
    assert_eq!(
        shown["one_line"], true,
        "the time-left cell wraps at 1200 px: {shown}"
    );

    lock.release().await.unwrap();
    page.close().await.unwrap();
}
