//! The web dashboard: static HTML, CSS and JavaScript compiled into the binary, served at
//! `GET /` and its pages, reading the JSON insight API from the browser.
//!
//! Nothing here queries the store: every number a page shows comes from
//! `GET /v1/insights/{name}`, with the admin token the browser keeps for its session, or
//! with `public=true` on the public page of an app (`/public/{app}`). The assets are
//! vendored files with no build step (docs/dashboard.md says why); uPlot draws the time
//! series (`assets/vendor/uplot`, MIT, version in `VERSION`).
//!
//! Also `GET /v1/apps`: the apps whose schemas the collector enforces, so that the
//! dashboard can offer them (their names are no secret: every client sends one), and
//! `GET /v1/apps/{app}/schema`, what an app's events hold and why ([`crate::collect`]),
//! drawn by the public page `/collect/{app}`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Shared;

/// The private pages; each is the same shell, which draws the page its path names.
pub(crate) const PAGES: &[&str] = &["/", "/plugins", "/errors", "/runtimes", "/setup-time", "/releases", "/retention"];

/// The public pages of one app (no token).
pub(crate) const APP_PAGES: &[&str] = &["/public/{app}", "/collect/{app}"];

const SHELL: &str = include_str!("../assets/index.html");

/// `(path, content type, body)` of every asset.
pub(crate) const ASSETS: &[(&str, &str, &[u8])] = &[
    ("/assets/dashboard.css", "text/css; charset=utf-8", include_bytes!("../assets/dashboard.css")),
    ("/assets/dashboard.js", "text/javascript; charset=utf-8", include_bytes!("../assets/dashboard.js")),
    ("/assets/pages.js", "text/javascript; charset=utf-8", include_bytes!("../assets/pages.js")),
    (
        "/assets/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/uplot/uPlot.iife.min.js"),
    ),
    ("/assets/uPlot.min.css", "text/css; charset=utf-8", include_bytes!("../assets/vendor/uplot/uPlot.min.css")),
    ("/assets/uPlot-LICENSE.txt", "text/plain; charset=utf-8", include_bytes!("../assets/vendor/uplot/LICENSE")),
];

/// The pages scripts may only come from this origin, and no other site may frame them
/// (the private pages hold an admin token). uPlot sizes its canvas with inline styles.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let mut router =
        Router::new().route("/v1/apps", get(apps)).route("/v1/apps/{app}/schema", get(crate::collect::schema));
    for page in PAGES {
        router = router.route(page, get(shell));
    }
    for page in APP_PAGES {
        router = router.route(page, get(shell));
    }
    for &(path, content_type, body) in ASSETS {
        router = router.route(path, get(move || async move { asset(content_type, body) }));
    }
    router
}

/// One entry of `GET /v1/apps`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct AppEntry {
    /// The app's name, as clients send it in `context.app`.
    app: String,
    /// What the app is, from its schema.
    description: String,
}

async fn shell() -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], SHELL).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    // `no-cache` revalidates on every load: the assets change with the binary, and they
    // are small enough that a stale dashboard costs more than a request.
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /v1/apps`.
#[utoipa::path(
    get,
    path = "/v1/apps",
    tag = "apps",
    summary = "The apps whose schemas the collector enforces",
    responses((status = 200, description = "each app's name and description", body = Vec<AppEntry>)),
)]
pub(crate) async fn apps(State(s): State<Arc<Shared>>) -> Response {
    let apps: Vec<_> = s
        .schemas
        .iter()
        .map(|schema| AppEntry { app: schema.app.clone(), description: schema.description.clone() })
        .collect();
    Json(apps).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    fn collector() -> crate::Collector {
        let store = Arc::new(tally_store::MemoryStore::default());
        crate::Collector::new(
            store,
            crate::builtin::load(None).expect("schemas"),
            tally_store::ServerSecret::from_bytes([7; 32]),
            crate::Settings::default(),
        )
        .expect("collector")
    }

    async fn get(path: &str) -> (StatusCode, String, String) {
        let response = collector()
            .router()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().expect("ascii").to_string())
            .unwrap_or_default();
        let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, content_type, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn every_page_is_the_shell_and_every_asset_it_names_is_served() {
        for page in PAGES.iter().copied().chain(["/public/demo", "/collect/demo"]) {
            let (status, content_type, body) = get(page).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert!(content_type.starts_with("text/html"), "{page}: {content_type}");
            assert_eq!(body, SHELL, "{page}");
        }
        for (path, content_type, body) in ASSETS {
            let (status, served_type, served) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(&served_type, content_type, "{path}");
            assert_eq!(served.as_bytes(), *body, "{path}");
        }
        for asset in SHELL.split("\"/assets/").skip(1).map(|rest| rest.split('"').next().expect("quoted")) {
            let path = format!("/assets/{asset}");
            assert!(ASSETS.iter().any(|(p, _, _)| *p == path), "index.html names {path}, which is not served");
        }
    }

    #[tokio::test]
    async fn apps_lists_the_enforced_schemas() {
        let (status, _, body) = get("/v1/apps").await;
        assert_eq!(status, StatusCode::OK);
        let apps: serde_json::Value = serde_json::from_str(&body).expect("json");
        let names: Vec<_> = apps.as_array().expect("array").iter().map(|a| a["app"].as_str().expect("name")).collect();
        assert_eq!(names, ["demo", "strapi"]);
    }

    #[tokio::test]
    async fn schema_lists_every_event_and_property_with_why_without_a_token() {
        let (status, _, body) = get("/v1/apps/demo/schema").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
        let schema = crate::builtin::load(None).expect("schemas").get("demo").expect("demo").clone();
        let names = |key: &str| -> Vec<String> {
            answer[key]
                .as_array()
                .expect("array")
                .iter()
                .map(|e| e["name"].as_str().expect("name").to_string())
                .collect()
        };
        assert_eq!(names("events"), schema.events.keys().cloned().collect::<Vec<_>>());
        assert_eq!(names("props"), schema.props.keys().cloned().collect::<Vec<_>>());
        for key in ["events", "props", "fields"] {
            for item in answer[key].as_array().expect("array") {
                assert!(!item["why"].as_str().expect("why").is_empty(), "{item}");
            }
        }
        assert_eq!(answer["example"]["context"]["app"], "demo");
        let (status, _, _) = get("/v1/apps/nope/schema").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
