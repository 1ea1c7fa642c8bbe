//! The dashboard's protections in process: the login redirect, the cookies'
//! attributes, the CSRF checks of the login form, the security headers, a
//! session opening pages, and HTML 404s. The pages themselves are driven in
//! Chromium by crates/carteiro/tests/dashboard.rs.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use carteiro_store::Role;
use tower::ServiceExt;

use super::Harness;

const PASSWORD: &str = "correct horse battery";

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `Set-Cookie` value that sets `name`.
    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
    }

    /// The value a cookie is set to.
    fn cookie_value(&self, name: &str) -> String {
        let set = self
            .set_cookie(name)
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", self.headers));
        set[name.len() + 1..]
            .split(';')
            .next()
            .unwrap_or("")
            .to_owned()
    }
}

async fn request(harness: &Harness, method: Method, uri: &str, cookie: &str, form: &str) -> Page {
    let mut request = Request::builder().method(method).uri(uri);
    if !cookie.is_empty() {
        request = request.header(header::COOKIE, cookie);
    }
    if !form.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let request = request.body(Body::from(form.to_owned())).expect("request");
    let response = harness
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    Page {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(harness: &Harness, uri: &str, cookie: &str) -> Page {
    request(harness, Method::GET, uri, cookie, "").await
}

/// Signs in as a new admin; returns the session cookie.
async fn sign_in(harness: &Harness) -> String {
    harness
        .store
        .add_user("ops@example.com", Role::Admin, None, PASSWORD)
        .await
        .expect("user");
    let form = get(harness, "/ui/login", "").await;
    let token = form.cookie_value("carteiro_login");
    let answer = request(
        harness,
        Method::POST,
        "/ui/login",
        &format!("carteiro_login={token}"),
        &format!("email=ops%40example.com&password=correct+horse+battery&csrf={token}&next=%2Fui%2Fmessages"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location(), "/ui/messages");
    format!(
        "carteiro_session={}",
        answer.cookie_value("carteiro_session")
    )
}

#[tokio::test]
async fn without_a_session_every_page_leads_to_the_login() {
    let harness = Harness::new().await;
    for path in ["/ui/", "/ui/messages?status=bounced", "/ui/keys"] {
        let page = get(&harness, path, "").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            page.location().starts_with("/ui/login?next=/ui/"),
            "{path}: {}",
            page.location()
        );
    }
    let page = get(&harness, "/ui/", "carteiro_session=forged-or-expired-token").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let post = request(&harness, Method::POST, "/ui/keys", "", "csrf=x").await;
    assert_eq!(
        post.status,
        StatusCode::SEE_OTHER,
        "a post without a session changes nothing"
    );
}

#[tokio::test]
async fn the_login_form_sets_a_strict_http_only_token_and_strict_headers() {
    let harness = Harness::new().await;
    let page = get(&harness, "/ui/login", "").await;
    assert_eq!(page.status, StatusCode::OK);
    let cookie = page.set_cookie("carteiro_login").expect("login cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        cookie.contains("Path=/ui/") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let token = page.cookie_value("carteiro_login");
    assert!(
        page.body
            .contains(&format!("name=\"csrf\" value=\"{token}\"")),
        "{}",
        page.body
    );
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");

    let https =
        Harness::with_config(|c| c.http.public_url = "https://mail.example.com".to_owned()).await;
    let page = get(&https, "/ui/login", "").await;
    assert!(
        page.set_cookie("carteiro_login")
            .expect("cookie")
            .ends_with("; Secure")
    );
}

#[tokio::test]
async fn a_login_without_the_forms_token_is_refused_even_with_the_right_password() {
    let harness = Harness::new().await;
    harness
        .store
        .add_user("ops@example.com", Role::Admin, None, PASSWORD)
        .await
        .expect("user");
    let form = "email=ops%40example.com&password=correct+horse+battery";
    for (cookie, csrf) in [("", ""), ("carteiro_login=abc", "abd"), ("", "abc")] {
        let page = request(
            &harness,
            Method::POST,
            "/ui/login",
            cookie,
            &format!("{form}&csrf={csrf}"),
        )
        .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{cookie} {csrf}");
        assert!(page.set_cookie("carteiro_session").is_none());
        assert!(page.body.contains("sign in again"), "{}", page.body);
    }
}

#[tokio::test]
async fn a_session_opens_the_pages_until_logout() {
    let harness = Harness::new().await;
    let session = sign_in(&harness).await;
    let page = get(&harness, "/ui/", &session).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Overview"), "{}", page.body);
    assert!(page.body.contains("ops@example.com"));
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the logout form's token")
        .to_owned();

    let refused = request(&harness, Method::POST, "/ui/logout", &session, "csrf=wrong").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&harness, "/ui/", &session).await.status,
        StatusCode::OK,
        "still signed in"
    );

    let out = request(
        &harness,
        Method::POST,
        "/ui/logout",
        &session,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.set_cookie("carteiro_session")
            .expect("cleared")
            .contains("Max-Age=0")
    );
    assert_eq!(
        get(&harness, "/ui/", &session).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn unknown_pages_are_html_404s_and_static_files_are_served() {
    let harness = Harness::new().await;
    let session = sign_in(&harness).await;
    let page = get(&harness, "/ui/no/such/page", &session).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("Not found"), "{}", page.body);
    assert_eq!(
        get(&harness, "/ui/messages/not-an-id", &session)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let script = get(&harness, "/ui/static/app.js", "").await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(
        script.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(script.body.contains("uPlot"));
    assert_eq!(
        get(&harness, "/ui/static/uPlot.min.js", "").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&harness, "/ui/static/passwd", "").await.status,
        StatusCode::NOT_FOUND
    );
}
