//! The web console: static HTML, CSS and JavaScript modules embedded in the binary and served
//! at `/console/` on the management listener. The files need no token; everything they show
//! comes from the JSON API, called from the browser with the token the user signs in with.
//!
//! Every answer carries a Content-Security-Policy that allows only this origin's scripts,
//! styles and API (no inline script, no other host), and is never framed.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// What the console's pages may load: their own files and API, nothing inline, nothing else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under `/console/`, its media type, its bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $media_type:expr),* $(,)?) => {
        &[$(Asset {
            name: $name,
            media_type: $media_type,
            bytes: include_bytes!(concat!("assets/", $name)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "api.js" => JS,
    "app.js" => JS,
    "dom.js" => JS,
    "chart.js" => JS,
    "yaml.js" => JS,
    "pages/signin.js" => JS,
    "pages/overview.js" => JS,
    "pages/timeline.js" => JS,
    "pages/events.js" => JS,
    "pages/rules.js" => JS,
    "pages/playground.js" => JS,
    "pages/actions.js" => JS,
};

/// `/console` (to `/console/`), `/console/` (the page) and `/console/{file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| async { answer("index.html") }))
        .route(
            "/console/{*file}",
            get(|Path(file): Path<String>| async move { answer(&file) }),
        )
}

fn answer(name: &str) -> Response {
    let found = ASSETS.iter().find(|a| a.name == name);
    let mut response = match found {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.media_type),
                // Small files, read again when changed: the browser asks, the answer is quick.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such console file",
        )
            .into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        // Each `import ... from './x.js'` in an embedded script names an embedded file, so the
        // browser never asks for one that answers 404.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).expect("scripts are UTF-8");
            let dir = asset.name.rsplit_once('/').map_or("", |(d, _)| d);
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split(['\'', '"']).nth(1) else {
                    continue;
                };
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for part in spec.split('/') {
                    match part {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        p => parts.push(p),
                    }
                }
                let target = parts.join("/");
                assert!(
                    ASSETS.iter().any(|a| a.name == target),
                    "{} imports {spec}, which is not embedded",
                    asset.name
                );
            }
        }
    }

    /// The rule the playground starts with (no rule chosen) is a valid one: a newcomer's first
    /// "Check" passes.
    #[test]
    fn the_playgrounds_starting_rule_is_valid() {
        let script = include_str!("assets/pages/playground.js");
        let start = script.find("const BLANK = `").expect("the starting rule") + 15;
        let text = &script[start..start + script[start..].find('`').unwrap()];
        let texts = [(std::path::PathBuf::from("playground.yaml"), text.to_owned())].into();
        if let Err(errors) = crate::rules::RuleSet::compile(&texts) {
            panic!("the playground's starting rule: {errors:?}");
        }
    }

    #[test]
    fn pages_have_no_inline_script_or_outside_asset() {
        let index = ASSETS.iter().find(|a| a.name == "index.html").unwrap();
        let html = std::str::from_utf8(index.bytes).unwrap();
        assert!(
            !html.contains("<script>"),
            "no inline script: CSP refuses it"
        );
        assert!(!html.contains("http://") && !html.contains("https://"));
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.bytes);
            assert!(
                !text.contains("https://") || asset.name.ends_with(".svg"),
                "{} names an outside address",
                asset.name
            );
        }
    }
}
