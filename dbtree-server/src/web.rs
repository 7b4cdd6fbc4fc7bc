//! The browser app: plain HTML, ES modules and CSS from `dbtree-server/web/`, embedded in the
//! binary and served at `/` (the page) and `/assets/{version}/…` (everything it loads).
//!
//! `{version}` is a hash of every embedded file, so asset URLs change whenever any file does:
//! assets are cached for a year as immutable, and the page itself is revalidated on every visit
//! (`no-cache` with an `ETag`). Every answer carries a strict Content-Security-Policy: scripts,
//! styles, images and connections from this origin only, no inline code, no framing.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use poem::http::{HeaderMap, HeaderValue, StatusCode, header};
use poem::web::Path;
use poem::{Body, IntoResponse, Request, Response, handler};

/// The Content-Security-Policy of the page and its assets.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where the page links its assets; replaced by `/assets/{version}` when served.
const ASSET_PREFIX_PLACEHOLDER: &str = "/assets/VERSION";

/// One embedded file.
#[derive(Debug)]
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../web/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the page may load.
static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/api.js", JS),
    asset!("js/auth.js", JS),
    asset!("js/dashboard.js", JS),
    asset!("js/databases.js", JS),
    asset!("js/harvest.js", JS),
    asset!("js/instances.js", JS),
    asset!("js/leaderboard.js", JS),
    asset!("js/main.js", JS),
    asset!("js/messages.js", JS),
    asset!("js/path.js", JS),
    asset!("js/runway.js", JS),
    asset!("js/tree.js", JS),
    asset!("js/ui.js", JS),
];

const INDEX_TEMPLATE: &str = include_str!("../web/index.html");

/// A hash of every embedded file (16 hex digits).
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = DefaultHasher::new();
    INDEX_TEMPLATE.hash(&mut hasher);
    for file in ASSETS {
        file.path.hash(&mut hasher);
        file.body.hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
});

/// The page with its asset links pointing at this version.
static INDEX: LazyLock<String> = LazyLock::new(|| {
    INDEX_TEMPLATE.replace(ASSET_PREFIX_PLACEHOLDER, &format!("/assets/{}", *VERSION))
});

/// The version segment of asset URLs.
pub fn version() -> &'static str {
    &VERSION
}

fn security_headers(headers: &mut HeaderMap) {
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
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// Answers `body` with its type and caching, or 304 when the client's copy is current.
fn respond(
    req: &Request,
    body: &'static [u8],
    content_type: &'static str,
    cache_control: &'static str,
) -> Response {
    let etag = format!("\"{}\"", *VERSION);
    let current = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if current {
        Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .finish()
    } else {
        Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    security_headers(headers);
    response
}

/// `GET /`: the page.
#[handler]
pub(crate) fn index(req: &Request) -> Response {
    respond(
        req,
        INDEX.as_bytes(),
        "text/html; charset=utf-8",
        "no-cache",
    )
}

/// `GET /assets/:version/*path`: one embedded file. The current version is cached as immutable;
/// an older version (a page loaded before an upgrade) gets today's file, revalidated each time.
#[handler]
pub(crate) fn asset(req: &Request, Path((version, path)): Path<(String, String)>) -> Response {
    let Some(found) = ASSETS.iter().find(|a| a.path == path) else {
        return crate::ops::unmatched(StatusCode::NOT_FOUND).into_response();
    };
    let cache = if version == *VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    respond(req, found.body, found.content_type, cache)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use poem::{Endpoint, Route, get};

    use super::*;

    fn app() -> impl Endpoint {
        Route::new()
            .at("/", get(index))
            .at("/assets/:version/*path", get(asset))
    }

    async fn fetch(uri: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::builder().uri(uri.parse().unwrap());
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        app().get_response(req.finish()).await
    }

    fn header_of<'a>(r: &'a Response, name: &str) -> &'a str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// `./x.js` and `'./x.js'` style module specifiers in a JS file.
    fn imports(source: &str) -> Vec<String> {
        source
            .lines()
            .filter(|l| l.starts_with("import ") || l.starts_with("} from "))
            .filter_map(|l| {
                let quote = l.rfind(['\'', '"'])?;
                let open = l[..quote].rfind(['\'', '"'])?;
                Some(l[open + 1..quote].to_owned())
            })
            .collect()
    }

    #[tokio::test]
    async fn the_page_links_this_version_and_is_revalidated() {
        let page = fetch("/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(header_of(&page, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header_of(&page, "cache-control"), "no-cache");
        assert_eq!(
            header_of(&page, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert_eq!(header_of(&page, "x-content-type-options"), "nosniff");
        let etag = header_of(&page, "etag").to_owned();
        let html = page.into_body().into_string().await.unwrap();
        assert!(html.contains(&format!("/assets/{}/js/main.js", version())));
        assert!(!html.contains(ASSET_PREFIX_PLACEHOLDER));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external URL"
        );
        assert!(
            !html.contains(" style=") && !html.contains("<style"),
            "no inline styles"
        );
        assert!(!html.contains("<script>"), "no inline scripts");

        let again = fetch("/", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_and_cached_when_current() {
        for a in ASSETS {
            let current = fetch(&format!("/assets/{}/{}", version(), a.path), None).await;
            assert_eq!(current.status(), StatusCode::OK, "{}", a.path);
            assert_eq!(header_of(&current, "content-type"), a.content_type);
            assert!(header_of(&current, "cache-control").contains("immutable"));
            assert_eq!(
                header_of(&current, "content-security-policy"),
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(current.into_body().into_vec().await.unwrap(), a.body);
            let old = fetch(&format!("/assets/0123/{}", a.path), None).await;
            assert_eq!(old.status(), StatusCode::OK);
            assert_eq!(header_of(&old, "cache-control"), "no-cache");
        }
        let missing = fetch(&format!("/assets/{}/js/nothing.js", version()), None).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let escape = fetch(&format!("/assets/{}/../src/web.rs", version()), None).await;
        assert_eq!(escape.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_module_import_and_page_link_is_embedded() {
        let embedded = |p: &str| ASSETS.iter().any(|a| a.path == p);
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let source = std::str::from_utf8(a.body).unwrap();
            for spec in imports(source) {
                let target = spec
                    .strip_prefix("./")
                    .map(|rest| format!("js/{rest}"))
                    .unwrap_or_else(|| panic!("{}: non-relative import {spec}", a.path));
                assert!(embedded(&target), "{} imports {spec}, not embedded", a.path);
            }
            // the SVG namespace is a name, not a request
            let source_without_ns = source.replace("'http://www.w3.org/2000/svg'", "");
            assert!(
                !source_without_ns.contains("http://") && !source_without_ns.contains("https://"),
                "{} names an external URL",
                a.path
            );
            assert!(!source.contains("innerHTML"), "{}: build DOM nodes", a.path);
        }
        let mut linked = 0;
        for piece in INDEX_TEMPLATE
            .split(&format!("{ASSET_PREFIX_PLACEHOLDER}/"))
            .skip(1)
        {
            let path = &piece[..piece.find('"').unwrap()];
            assert!(embedded(path), "index.html links {path}, not embedded");
            linked += 1;
        }
        assert!(
            linked >= 3,
            "the page links its stylesheet, icon and script"
        );
    }
}
