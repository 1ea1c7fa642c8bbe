use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mail_parser::MimeHeaders;
use proptest::prelude::*;

const PUBLIC: &str = "https://t.shop.test";
const PIXEL: &str = "https://t.shop.test/t/o/PIXELTOKEN";

/// The test's link URLs carry the target readably: `PUBLIC/t/c/<base64url>`.
fn link(url: &str) -> String {
    format!("{PUBLIC}/t/c/{}", URL_SAFE_NO_PAD.encode(url))
}

/// The target of a test link URL.
fn target(tracked: &str) -> Option<String> {
    let encoded = tracked.strip_prefix(&format!("{PUBLIC}/t/c/"))?;
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
}

fn both() -> Tracking<'static> {
    Tracking {
        public_url: PUBLIC,
        pixel: Some(PIXEL),
        link: Some(&link),
    }
}

fn html(text: &str, tracking: &Tracking<'_>) -> String {
    String::from_utf8(track_html(text.as_bytes(), tracking).expect("changed")).unwrap()
}

/// Every `href="…"` value of `text` (any case), in order.
fn hrefs(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    lower
        .match_indices("href=\"")
        .map(|(at, _)| {
            let rest = &text[at + 6..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_string()
        })
        .collect()
}

#[test]
fn links_are_rewritten_and_the_pixel_goes_before_body_end() {
    let input = "<html><body>\
        <a href=\"https://shop.test/a?x=1&amp;y=2\">one</a>\
        <A HREF='http://shop.test/b'>two</A>\
        <a class=x href=https://shop.test/c>three</a>\
        <area shape=rect href=\" https://shop.test/d \">\
        </body></html>";
    let out = html(input, &both());
    let found = hrefs(&out);
    let targets: Vec<String> = found.iter().filter_map(|h| target(h)).collect();
    assert_eq!(
        targets,
        [
            "https://shop.test/a?x=1&y=2",
            "http://shop.test/b",
            "https://shop.test/c",
            "https://shop.test/d"
        ],
        "{out}"
    );
    assert!(
        out.contains("<A HREF=\""),
        "the tag keeps its spelling: {out}"
    );
    assert!(out.contains(">two</A>"), "{out}");
    let pixel = format!("<img src=\"{PIXEL}\" width=\"1\" height=\"1\" alt=\"\"");
    let at = out.find(&pixel).expect("pixel");
    assert_eq!(
        &out[out.rfind("</body>").unwrap() - 2..],
        "/></body></html>"
    );
    assert!(at < out.find("</body>").unwrap());
    assert_eq!(out.matches("<img").count(), 1);
}

#[test]
fn links_that_must_stay_are_left_alone() {
    let input = "<body>\
        <a href=\"mailto:help@shop.test\">mail</a>\
        <a href=\"tel:+351210000000\">call</a>\
        <a href=\"#top\">top</a>\
        <a href=\"/relative\">rel</a>\
        <a href=\"https://t.shop.test/u/TOKEN\">unsubscribe</a>\
        <a href=\"HTTPS://T.SHOP.TEST/t/c/x\">already</a>\
        <a href=\"javascript:alert(1)\">js</a>\
        <a href=\"https://shop.test/a b\">space</a>\
        <a href=\"https://shop.test/&copy;\">entity</a>\
        <a href=\"https://shop.test/x&copy.y\">legacy entity</a>\
        <a href=\"https://shop.test/\u{e9}\">non-ascii</a>\
        <a href=\"\">empty</a>\
        <a name=\"x\">no href</a>\
        <link rel=stylesheet href=\"https://shop.test/style.css\">\
        <base href=\"https://shop.test/\">\
        <!-- <a href=\"https://shop.test/commented\"> -->\
        <!--[if mso]><v:roundrect href=\"https://shop.test/vml\"><![endif]-->\
        <script>var s = '<a href=\"https://shop.test/script\">';</script>\
        <style>a[href=\"https://shop.test/style\"] {}</style>\
        <title><a href=\"https://shop.test/title\"></title>\
        </body>";
    let out = html(input, &both());
    let pixel = format!("<img src=\"{PIXEL}\"");
    assert_eq!(out.replacen(&pixel, "", 1).len(), out.len() - pixel.len());
    let without_pixel = {
        let start = out.find("<img").unwrap();
        let end = start + out[start..].find("/>").unwrap() + 2;
        format!("{}{}", &out[..start], &out[end..])
    };
    assert_eq!(without_pixel, input, "only the pixel was added");
}

#[test]
fn the_public_url_is_matched_at_a_boundary_only() {
    assert!(!is_trackable("https://t.shop.test", PUBLIC));
    assert!(!is_trackable("https://t.shop.test/", PUBLIC));
    assert!(!is_trackable("https://t.shop.test?x", PUBLIC));
    assert!(is_trackable("https://t.shop.test.evil.test/", PUBLIC));
    assert!(is_trackable("https://t.shop.testing/", PUBLIC));
    assert!(is_trackable("https://shop.test/", "http://127.0.0.1:8025/"));
    assert!(!is_trackable(
        "http://127.0.0.1:8025/u/x",
        "http://127.0.0.1:8025/"
    ));
    assert!(!is_trackable(
        &format!("https://shop.test/{}", "a".repeat(MAX_LINK_LEN)),
        PUBLIC
    ));
}

#[test]
fn character_references_are_read_as_a_browser_does() {
    let read = |v: &str| link_target(v.as_bytes());
    assert_eq!(
        read("https://a.test/?a=1&amp;b=2").unwrap(),
        "https://a.test/?a=1&b=2"
    );
    assert_eq!(
        read("https://a.test/?a=1&b=2").unwrap(),
        "https://a.test/?a=1&b=2"
    );
    assert_eq!(
        read("https://a.test/?x=1&copy=2").unwrap(),
        "https://a.test/?x=1&copy=2"
    );
    assert_eq!(
        read("https://a.test/&#47;&#x2F;").unwrap(),
        "https://a.test///"
    );
    assert_eq!(read("https://a.test/?a&amp").unwrap(), "https://a.test/?a&");
    assert_eq!(
        read("https://a.test/? & x").map(|_| ()),
        None,
        "inner space"
    );
    assert_eq!(
        read("https://a.test/&para&x"),
        None,
        "legacy ¶ decoded by browsers"
    );
    assert_eq!(read("https://a.test/&hellip;"), None);
    assert_eq!(read("https://a.test/&#0;"), None);
    assert_eq!(read("https://a.test/&#xFFFFFFFFF;"), None);
    assert_eq!(read("\t https://a.test/ \n").unwrap(), "https://a.test/");
}

#[test]
fn clicks_only_or_opens_only() {
    let input = "<p><a href=\"https://shop.test/\">x</a></p>";
    let opens = Tracking {
        public_url: PUBLIC,
        pixel: Some(PIXEL),
        link: None,
    };
    let out = html(input, &opens);
    assert!(
        out.starts_with(input),
        "no </body>: the pixel goes at the end"
    );
    assert!(out.ends_with("/>"));
    let clicks = Tracking {
        public_url: PUBLIC,
        pixel: None,
        link: Some(&link),
    };
    let out = html(input, &clicks);
    assert!(!out.contains("<img"));
    assert_eq!(target(&hrefs(&out)[0]).unwrap(), "https://shop.test/");
    let nothing = Tracking {
        public_url: PUBLIC,
        pixel: None,
        link: Some(&link),
    };
    assert_eq!(track_html(b"<p>no links</p>", &nothing), None);
    assert_eq!(
        track_message(
            b"Content-Type: text/html\r\n\r\n<a href=x>",
            &Tracking {
                public_url: PUBLIC,
                pixel: None,
                link: None
            }
        ),
        None
    );
}

#[test]
fn unfinished_tags_and_odd_markup_do_not_confuse_the_scanner() {
    let pixel_only = Tracking {
        public_url: PUBLIC,
        pixel: None,
        link: Some(&link),
    };
    for input in [
        "<a href=\"https://shop.test/",
        "<a href='https://shop.test/",
        "<a href=",
        "<a href",
        "<a",
        "<",
        "<!--",
        "<!-- <a href=https://shop.test/>",
        "<script><a href=https://shop.test/>",
        "</",
        "</a",
        "<a href=>x</a>",
    ] {
        assert_eq!(track_html(input.as_bytes(), &pixel_only), None, "{input}");
    }
    // An empty comment closed abruptly does not hide what follows.
    let out = html("<!--><a href=https://shop.test/>", &pixel_only);
    assert_eq!(hrefs(&out).len(), 1, "{out}");
    // A duplicate href: browsers use the first.
    let out = html(
        "<a href=https://shop.test/1 href=https://shop.test/2>",
        &pixel_only,
    );
    assert!(out.ends_with(" href=https://shop.test/2>"), "{out}");
    // `</body>` inside a comment is not the end of the body.
    let out = html("<body>x<!-- </body> --></body>", &both());
    assert!(out.contains("--><img src="), "{out}");
}

/// A multipart/alternative message like the API's, with the HTML part in
/// `encoding` (its body already encoded as `html_body`).
fn alternative(encoding: &str, html_body: &str) -> String {
    format!(
        "Received: by relay.test (Carteiro) with HTTP\r\n\
         From: Shop <orders@shop.test>\r\n\
         To: alice@dest.test\r\n\
         Subject: Order\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative;\r\n boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 7bit\r\n\
         \r\n\
         See https://shop.test/order\r\n\
         --b1\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Transfer-Encoding: {encoding}\r\n\
         \r\n\
         {html_body}\r\n\
         --b1--\r\n"
    )
}

const PAGE: &str = "<html><body><p>Ol\u{e1}!</p>\
    <a href=\"https://shop.test/order?id=1&amp;t=2\">Your order</a> \
    <a href=\"mailto:help@shop.test\">help</a></body></html>";

/// The decoded HTML body of `message`, parsed independently.
fn parsed_html(message: &[u8]) -> String {
    let parsed = MessageParser::new().parse(message).expect("parses");
    parsed.body_html(0).expect("an html body").into_owned()
}

fn parsed_text(message: &[u8]) -> String {
    let parsed = MessageParser::new().parse(message).expect("parses");
    parsed.body_text(0).expect("a text body").into_owned()
}

fn check_tracked(message: &[u8]) {
    let html = parsed_html(message);
    let found = hrefs(&html);
    assert_eq!(
        target(&found[0]).as_deref(),
        Some("https://shop.test/order?id=1&t=2"),
        "{html}"
    );
    assert_eq!(found[1], "mailto:help@shop.test");
    assert!(html.contains("<p>Ol\u{e1}!</p>"), "{html}");
    assert!(
        html.contains(&format!("<img src=\"{PIXEL}\"")) && html.ends_with("/></body></html>"),
        "{html}"
    );
    assert!(parsed_text(message).starts_with("See https://shop.test/order"));
    let text = String::from_utf8_lossy(message);
    assert!(
        text.starts_with("Received: by relay.test (Carteiro) with HTTP\r\n"),
        "the header section is untouched"
    );
    assert!(
        text.contains("\r\nSee https://shop.test/order\r\n--b1\r\n"),
        "the text part is untouched"
    );
    assert!(longest_line(message) <= MAX_LINE);
}

#[test]
fn quoted_printable_html_is_decoded_rewritten_and_encoded_again() {
    let encoded = String::from_utf8(qp_encode(PAGE.as_bytes())).unwrap();
    let message = alternative("quoted-printable", &encoded);
    assert_eq!(parsed_html(message.as_bytes()), PAGE);
    let out = track_message(message.as_bytes(), &both()).expect("changed");
    check_tracked(&out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Content-Transfer-Encoding: quoted-printable\r\n\r\n"));
    assert!(text.ends_with("\r\n--b1--\r\n"), "{text}");
}

#[test]
fn base64_html_is_decoded_rewritten_and_encoded_again() {
    let encoded = String::from_utf8(base64_encode(PAGE.as_bytes())).unwrap();
    let message = alternative("base64", &encoded);
    let out = track_message(message.as_bytes(), &both()).expect("changed");
    check_tracked(&out);
    let text = String::from_utf8(out).unwrap();
    let body = text
        .split("Content-Transfer-Encoding: base64\r\n\r\n")
        .nth(1)
        .unwrap();
    assert!(body.lines().all(|l| l.len() <= 76), "{body}");
    assert!(text.ends_with("\r\n--b1--\r\n"), "{text}");
}

#[test]
fn unencoded_html_stays_unencoded_while_lines_are_short() {
    let page = PAGE.replace('\u{e1}', "a");
    let message = alternative("7bit", &page);
    let out = track_message(message.as_bytes(), &both()).expect("changed");
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains("Content-Transfer-Encoding: 7bit\r\n\r\n<html>"));
    let html = parsed_html(&out);
    assert_eq!(
        target(&hrefs(&html)[0]).as_deref(),
        Some("https://shop.test/order?id=1&t=2")
    );
}

#[test]
fn a_line_made_too_long_turns_the_part_quoted_printable() {
    let long = format!("https://shop.test/{}", "x".repeat(700));
    let page = format!("<html><body><a href=\"{long}\">x</a></body></html>");
    // A single-part message: the edited header is the message's own.
    let message = format!(
        "Received: by relay.test\r\nFrom: a@shop.test\r\nContent-Type: text/html\r\n\
         Content-Transfer-Encoding: 7bit\r\nSubject: x\r\n\r\n{page}\r\n"
    );
    let out = track_message(message.as_bytes(), &both()).expect("changed");
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(longest_line(&out) <= 76, "{text}");
    assert!(
        text.starts_with(
            "Received: by relay.test\r\nFrom: a@shop.test\r\nContent-Type: text/html\r\n\
             Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        ),
        "{text}"
    );
    let html = parsed_html(&out);
    assert_eq!(target(&hrefs(&html)[0]).as_deref(), Some(long.as_str()));
    assert!(html.contains("<img src="));
}

#[test]
fn a_long_line_in_a_sub_part_changes_only_that_part_header() {
    let long = format!("https://shop.test/{}", "y".repeat(900));
    let message = alternative("8bit", &format!("<p><a href=\"{long}\">x</a></p>"));
    let out = track_message(message.as_bytes(), &both()).expect("changed");
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(longest_line(&out) <= 76, "{text}");
    let (before, after) = text.split_once("--b1\r\nContent-Type: text/html").unwrap();
    assert!(
        message.starts_with(before),
        "everything before the part is kept"
    );
    assert!(
        after.starts_with(
            "; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p><a href=3D\""
        ),
        "{after}"
    );
    assert!(text.ends_with("\r\n--b1--\r\n"));
    let html = parsed_html(&out);
    assert_eq!(target(&hrefs(&html)[0]).as_deref(), Some(long.as_str()));
    check_text_part(&out);
}

fn check_text_part(message: &[u8]) {
    assert_eq!(parsed_text(message), "See https://shop.test/order");
}

#[test]
fn nested_parts_attachments_and_forwarded_messages() {
    let message = "From: a@shop.test\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=outer\r\n\
        \r\n\
        preamble\r\n\
        --outer\r\n\
        Content-Type: multipart/related; boundary=\"rel\"\r\n\
        \r\n\
        --rel\r\n\
        Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
        \r\n\
        --alt\r\n\
        Content-Type: text/plain\r\n\
        \r\n\
        plain https://shop.test/p\r\n\
        --alt\r\n\
        Content-Type: text/html\r\n\
        \r\n\
        <body><a href=\"https://shop.test/in-body\">x</a></body>\r\n\
        --alt--\r\n\
        --rel\r\n\
        Content-Type: image/png\r\n\
        Content-ID: <logo>\r\n\
        Content-Transfer-Encoding: base64\r\n\
        \r\n\
        iVBORw0KGgo=\r\n\
        --rel--\r\n\
        --outer\r\n\
        Content-Type: text/html; name=page.html\r\n\
        Content-Disposition: attachment; filename=page.html\r\n\
        \r\n\
        <a href=\"https://shop.test/attached\">x</a>\r\n\
        --outer\r\n\
        Content-Type: message/rfc822\r\n\
        \r\n\
        From: b@else.test\r\n\
        Content-Type: text/html\r\n\
        \r\n\
        <a href=\"https://shop.test/forwarded\">x</a>\r\n\
        --outer--\r\n";
    let out = track_message(message.as_bytes(), &both()).expect("changed");
    let text = String::from_utf8(out).unwrap();
    let tracked: Vec<String> = hrefs(&text).iter().filter_map(|h| target(h)).collect();
    assert_eq!(tracked, ["https://shop.test/in-body"], "{text}");
    assert_eq!(text.matches("<img").count(), 1);
    assert!(text.contains("<a href=\"https://shop.test/attached\">"));
    assert!(text.contains("<a href=\"https://shop.test/forwarded\">"));
    // Only the one part changed.
    let changed_part = format!(
        "<body><a href=\"{}\">x</a>",
        link("https://shop.test/in-body")
    );
    let restored = text.replacen(
        &changed_part,
        "<body><a href=\"https://shop.test/in-body\">x</a>",
        1,
    );
    let start = restored.find("<img").unwrap();
    let end = start + restored[start..].find("/>").unwrap() + 2;
    assert_eq!(
        format!("{}{}", &restored[..start], &restored[end..]),
        message
    );
}

#[test]
fn html_is_looked_for_cheaply() {
    assert!(may_have_html(
        b"Content-Type: TEXT/HTML; charset=utf-8\r\n\r\nx"
    ));
    assert!(may_have_html(alternative("7bit", "x").as_bytes()));
    assert!(!may_have_html(b"Content-Type: text/plain\r\n\r\ntext/htm"));
}

#[test]
fn messages_without_html_are_unchanged() {
    for message in [
        &b"From: a@shop.test\r\nSubject: x\r\n\r\n<a href=\"https://shop.test/\">x</a>\r\n"[..],
        b"From: a@shop.test\r\nContent-Type: text/plain\r\n\r\nhttps://shop.test/\r\n",
        b"",
        b"no header at all",
        b"Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n",
        b"Content-Type: text/html; charset=utf-16\r\n\r\n<\0a\0 \0h\0r\0e\0f\0=\0x\0>\0",
        b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
    ] {
        assert_eq!(
            track_message(message, &both()),
            None,
            "{}",
            String::from_utf8_lossy(message)
        );
    }
}

#[test]
fn transfer_encoding_field_replacement() {
    assert_eq!(
        with_transfer_encoding(
            b"A: 1\r\nContent-Transfer-Encoding:\r\n 8bit\r\nB: 2\r\n\r\n",
            "quoted-printable"
        )
        .unwrap(),
        b"A: 1\r\nB: 2\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    );
    assert_eq!(
        with_transfer_encoding(b"\r\n", "base64").unwrap(),
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    );
    assert_eq!(with_transfer_encoding(b"A: 1\r\n", "base64"), None);
}

#[test]
fn quoted_printable_known_answers() {
    assert_eq!(qp_decode(b"a=3D=\r\nb=\nc =20=zz="), b"a=bc  =zz=");
    assert_eq!(qp_encode(b"a=b \r\nc\t"), b"a=3Db=20\r\nc=09");
    let long = qp_encode(&[b'x'; 200]);
    assert!(long.split(|&b| b == b'\n').all(|l| l.len() <= 77));
}

/// `data` with every line break written CRLF, as quoted-printable returns it.
fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            out.extend_from_slice(b"\r\n");
            i += 2;
        } else if data[i] == b'\n' {
            out.extend_from_slice(b"\r\n");
            i += 1;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

/// HTML-ish text from fragments that matter to the scanner.
fn htmlish() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("<a href=\"https://shop.test/x?a=1&amp;b\">".to_string()),
        Just("<a href='http://x.test/'>".to_string()),
        Just("<a href=https://x.test/>".to_string()),
        Just("<a href".to_string()),
        Just("<a href=\"".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("</a>".to_string()),
        Just("<!--".to_string()),
        Just("-->".to_string()),
        Just("<script>".to_string()),
        Just("</script>".to_string()),
        Just("</body>".to_string()),
        Just("<body>".to_string()),
        Just("<".to_string()),
        Just(">".to_string()),
        Just("&".to_string()),
        Just("&#x".to_string()),
        Just("=".to_string()),
        "[ -~\r\n\u{e9}]{0,12}",
    ];
    prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn html_scanning_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = track_html(&bytes, &both());
    }

    #[test]
    fn rewritten_links_come_from_the_input_and_rewriting_is_idempotent(text in htmlish()) {
        let clicks = Tracking { public_url: PUBLIC, pixel: None, link: Some(&link) };
        if let Some(out) = track_html(text.as_bytes(), &clicks) {
            let out = String::from_utf8(out).unwrap();
            prop_assert!(out.len() > text.len());
            for href in hrefs(&out) {
                if let Some(url) = target(&href) {
                    prop_assert!(is_trackable(&url, PUBLIC));
                    prop_assert!(
                        text.contains(&url) || text.contains(&url.replace('&', "&amp;")),
                        "{} not in {}", url, text
                    );
                }
            }
            prop_assert_eq!(track_html(out.as_bytes(), &clicks), None, "{}", out);
        }
        let _ = track_html(text.as_bytes(), &both());
    }

    #[test]
    fn messages_never_panic_and_text_only_ones_never_change(
        body in "[ -~\r\n]{0,300}",
        boundary in "[a-z0-9]{1,10}",
        cte in prop_oneof![Just("7bit"), Just("quoted-printable"), Just("base64"), Just("x")],
    ) {
        let text_only = format!("From: a@b.test\r\nContent-Type: text/plain\r\n\r\n{body}");
        prop_assert_eq!(track_message(text_only.as_bytes(), &both()), None);
        let html = format!(
            "From: a@b.test\r\nContent-Type: multipart/alternative; boundary={boundary}\r\n\r\n\
             --{boundary}\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: {cte}\r\n\r\n\
             {body}\r\n--{boundary}--\r\n"
        );
        if let Some(out) = track_message(html.as_bytes(), &both()) {
            // Still one parseable message with its HTML part.
            let parsed = MessageParser::new().parse(&out);
            prop_assert!(parsed.is_some());
        }
    }

    #[test]
    fn quoted_printable_round_trips(data in prop::collection::vec(any::<u8>(), 0..400)) {
        let encoded = qp_encode(&data);
        prop_assert!(encoded.split(|&b| b == b'\n').all(|l| l.len() <= 77));
        prop_assert!(encoded.iter().all(|&b| b == b'\r' || b == b'\n' || (32..127).contains(&b) || b == b'\t'));
        prop_assert_eq!(qp_decode(&encoded), crlf(&data));
    }

    #[test]
    fn base64_round_trips(data in prop::collection::vec(any::<u8>(), 0..400)) {
        prop_assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
    }
}

#[test]
fn content_type_of_the_tracked_part_is_kept() {
    let message = alternative("quoted-printable", "<a href=\"https://shop.test/\">x</a>");
    let out = track_message(message.as_bytes(), &both()).unwrap();
    let parsed = MessageParser::new().parse(&out).unwrap();
    let html_part = parsed
        .parts
        .iter()
        .find(|p| p.is_content_type("text", "html"))
        .unwrap();
    assert_eq!(
        html_part.content_type().unwrap().attribute("charset"),
        Some("utf-8")
    );
}
