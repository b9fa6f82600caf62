//! The client against scripted servers: what a real PostgreSQL never
//! does (skipping SCRAM's proof, odd methods, broken messages).

use super::*;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Answers with `script` whatever is written; records what is written.
struct Scripted {
    script: Vec<u8>,
    pos: usize,
    written: Vec<u8>,
    /// Appended to the script when the client sends CopyDone.
    after_copy_done: Vec<u8>,
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.pos == self.script.len() && !self.after_copy_done.is_empty() {
            // More comes after CopyDone: nothing to read yet (never woken
            // by itself: only polled once, by the check between chunks).
            return Poll::Pending;
        }
        let n = buf.len().min(self.script.len() - self.pos);
        buf[..n].copy_from_slice(&self.script[self.pos..self.pos + n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written.extend_from_slice(buf);
        if buf == b"c\0\0\0\x04" {
            let tail = std::mem::take(&mut self.after_copy_done);
            self.script.extend_from_slice(&tail);
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn connect(script: Vec<u8>) -> Result<Client<Scripted>, PgError> {
    futures_lite::future::block_on(Client::connect(scripted(script), "db", "u", "pw"))
}

fn scripted(script: Vec<u8>) -> Scripted {
    Scripted {
        script,
        pos: 0,
        written: Vec::new(),
        after_copy_done: Vec::new(),
    }
}

/// Connects allowing `require_auth`; the outcome and the frontend message
/// tags written after the startup message.
fn connect_auth(script: Vec<u8>, require_auth: &str) -> (Result<(), PgError>, Vec<u8>) {
    let methods = AuthMethods::parse(require_auth).unwrap();
    let mut stream = scripted(script);
    let result =
        futures_lite::future::block_on(Client::connect_with(&mut stream, "db", "u", "pw", methods))
            .map(|_| ());
    let tags = sent_tags(&stream.written);
    (result, tags)
}

fn ready_session() -> Vec<u8> {
    [
        msg(b'S', b"standard_conforming_strings\0on\0"),
        msg(b'S', b"client_encoding\0UTF8\0"),
        msg(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]),
        msg(b'Z', b"I"),
    ]
    .concat()
}

#[test]
fn trust_session() {
    let c = connect([msg(b'R', &0i32.to_be_bytes()), ready_session()].concat()).unwrap();
    assert_eq!(c.backend_key(), Some((7, 9)));
    assert_eq!(c.parameter("client_encoding"), Some("UTF8"));
}

#[test]
fn refusals() {
    let mut sasl = 10i32.to_be_bytes().to_vec();
    sasl.extend_from_slice(b"SCRAM-SHA-256\0\0");
    let mut plus_only = 10i32.to_be_bytes().to_vec();
    plus_only.extend_from_slice(b"SCRAM-SHA-256-PLUS\0\0");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // AuthenticationOk in the middle of SCRAM: no server proof.
        (
            [msg(b'R', &sasl), msg(b'R', &0i32.to_be_bytes())].concat(),
            "without proving",
        ),
        (msg(b'R', &plus_only), "this client speaks SCRAM-SHA-256"),
        (msg(b'R', &7i32.to_be_bytes()), "GSSAPI"),
        (msg(b'R', &42i32.to_be_bytes()), "unknown method"),
        (b"R\x7f\0\0\0".to_vec(), "bad length"),
        (msg(b'?', b""), "unexpected message '?'"),
        (
            [
                msg(b'R', &0i32.to_be_bytes()),
                msg(b'S', b"standard_conforming_strings\0off\0"),
                msg(b'Z', b"I"),
            ]
            .concat(),
            "standard_conforming_strings off",
        ),
        (
            msg(b'R', &0i32.to_be_bytes()),
            "connection to PostgreSQL failed",
        ),
    ];
    for (script, part) in cases {
        let e = connect(script).err().expect(part);
        assert!(e.to_string().contains(part), "{part}: {e}");
    }
}

#[test]
fn sends_startup_and_md5() {
    let mut md5 = 5i32.to_be_bytes().to_vec();
    md5.extend_from_slice(&[1, 2, 3, 4]);
    let script = [
        msg(b'R', &md5),
        msg(b'R', &0i32.to_be_bytes()),
        ready_session(),
    ]
    .concat();
    let c = connect(script).unwrap();
    let written = &c.io.get_ref().written;
    let startup_len = i32::from_be_bytes(written[..4].try_into().unwrap()) as usize;
    let startup = &written[..startup_len];
    assert!(
        startup.windows(9).any(|w| w == b"user\0u\0da"),
        "{startup:?}"
    );
    assert!(startup.ends_with(b"application_name\0riffle\0client_encoding\0UTF8\0\0"));
    let answer = &written[startup_len..];
    assert_eq!(
        answer,
        msg(
            b'p',
            format!("{}\0", scram::md5_password("u", "pw", &[1, 2, 3, 4])).as_bytes()
        )
    );
}

/// Tags of the frontend messages written after the startup message.
fn sent_tags(written: &[u8]) -> Vec<u8> {
    let mut pos = i32::from_be_bytes(written[..4].try_into().unwrap()) as usize;
    let mut tags = Vec::new();
    while pos < written.len() {
        tags.push(written[pos]);
        let len = i32::from_be_bytes(written[pos + 1..pos + 5].try_into().unwrap()) as usize;
        pos += 1 + len;
    }
    tags
}

#[test]
fn copy_stops_sending_at_an_error() {
    let script = [
        msg(b'R', &0i32.to_be_bytes()),
        ready_session(),
        msg(b'C', b"BEGIN\0"),
        msg(b'Z', b"T"),
        msg(b'G', &[0, 0, 0]),
        msg(b'E', b"SERROR\0VERROR\0C22P02\0Mbad\0\0"),
        msg(b'Z', b"E"),
        msg(b'C', b"ROLLBACK\0"),
        msg(b'Z', b"I"),
    ]
    .concat();
    let mut c = connect(script).unwrap();
    let data = vec![b'x'; 3 * COPY_CHUNK_SIZE_MAX];
    let e = futures_lite::future::block_on(c.copy_in("COPY t FROM STDIN", &data)).unwrap_err();
    assert_eq!(e.code(), Some("22P02"), "{e}");
    // BEGIN, COPY, ROLLBACK: no CopyData, no CopyDone after the error.
    assert_eq!(sent_tags(&c.io.get_ref().written), b"QQQ");
    assert_eq!(c.transaction_status, b'I');
}

#[test]
fn copy_sends_chunks_then_done() {
    let script = [
        msg(b'R', &0i32.to_be_bytes()),
        ready_session(),
        msg(b'C', b"BEGIN\0"),
        msg(b'Z', b"T"),
        msg(b'G', &[0, 0, 0]),
    ]
    .concat();
    let mut c = connect(script).unwrap();
    c.io.get_mut().after_copy_done = [
        msg(b'C', b"COPY 3\0"),
        msg(b'Z', b"T"),
        msg(b'C', b"COMMIT\0"),
        msg(b'Z', b"I"),
    ]
    .concat();
    let data = vec![b'x'; 2 * COPY_CHUNK_SIZE_MAX + 1];
    let n = futures_lite::future::block_on(c.copy_in("COPY t FROM STDIN", &data)).unwrap();
    assert_eq!(n, 3);
    let written = &c.io.get_ref().written;
    assert_eq!(sent_tags(written), b"QQdddcQ");
    // The CopyData payloads: two full chunks and the last byte.
    let mut sizes = Vec::new();
    let mut pos = i32::from_be_bytes(written[..4].try_into().unwrap()) as usize;
    while pos < written.len() {
        let len = i32::from_be_bytes(written[pos + 1..pos + 5].try_into().unwrap()) as usize;
        if written[pos] == b'd' {
            sizes.push(len - 4);
        }
        pos += 1 + len;
    }
    assert_eq!(sizes, vec![COPY_CHUNK_SIZE_MAX, COPY_CHUNK_SIZE_MAX, 1]);
}

fn auth(code: i32, rest: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(rest);
    msg(b'R', &body)
}

/// What the client answers to each authentication request under
/// `require_auth`: `Ok(tags sent)` or the error's text. Nothing is sent for
/// a request it refuses: the password never leaves.
#[test]
fn require_auth_decides_what_is_answered() {
    let ok = auth(0, b"");
    let cleartext = auth(3, b"");
    let md5 = auth(5, &[1, 2, 3, 4]);
    let sasl = auth(10, b"SCRAM-SHA-256\0\0");
    // (require_auth, script, the tags sent, the outcome). The SASL initial
    // response and a password are both 'p'.
    type Case<'a> = (&'a str, Vec<u8>, &'a [u8], Result<(), &'a str>);
    let cases: Vec<Case> = vec![
        // The default refuses cleartext, and says how to allow it.
        (
            "!password",
            [cleartext.clone(), ok.clone(), ready_session()].concat(),
            b"",
            Err(
                "asks for the password in cleartext (password), which require_auth does not allow \
                 (allowed: none, md5, scram-sha-256); add require_auth=password",
            ),
        ),
        (
            "password",
            [cleartext.clone(), ok.clone(), ready_session()].concat(),
            b"p",
            Ok(()),
        ),
        (
            "md5",
            [md5.clone(), ok.clone(), ready_session()].concat(),
            b"p",
            Ok(()),
        ),
        (
            "!md5",
            [md5.clone(), ok.clone(), ready_session()].concat(),
            b"",
            Err("MD5 password authentication (md5)"),
        ),
        (
            "!password",
            [ok.clone(), ready_session()].concat(),
            b"",
            Ok(()),
        ),
        (
            "scram-sha-256",
            [ok.clone(), ready_session()].concat(),
            b"",
            Err("without authentication (none)"),
        ),
        (
            "md5",
            sasl.clone(),
            b"",
            Err("SCRAM-SHA-256 authentication (scram-sha-256)"),
        ),
        // Once SASL began, no other method is answered, allowed or not.
        (
            "password,md5,scram-sha-256",
            [sasl.clone(), cleartext.clone()].concat(),
            b"p",
            Err("asks for a cleartext password (code 3) after SCRAM-SHA-256 began"),
        ),
        (
            "password,md5,scram-sha-256",
            [sasl.clone(), md5.clone()].concat(),
            b"p",
            Err("asks for MD5 (code 5) after SCRAM-SHA-256 began"),
        ),
        (
            "scram-sha-256",
            [sasl.clone(), sasl.clone()].concat(),
            b"p",
            Err("asks for SASL (code 10) after SCRAM-SHA-256 began"),
        ),
        // After MD5 was answered, a cleartext request is still checked.
        (
            "md5",
            [md5.clone(), cleartext.clone()].concat(),
            b"p",
            Err("in cleartext"),
        ),
    ];
    for (require_auth, script, sent, expected) in cases {
        let (result, tags) = connect_auth(script, require_auth);
        assert_eq!(tags, sent, "{require_auth}");
        match (expected, result) {
            (Ok(()), Ok(())) => {}
            (Err(part), Err(e)) => {
                assert!(e.to_string().contains(part), "{require_auth}: {e}");
                assert!(matches!(e, PgError::Auth(_)), "{require_auth}: {e}");
            }
            (expected, got) => panic!("{require_auth}: expected {expected:?}, got {got:?}"),
        }
    }
    // Connect's default is require_auth=!password.
    let e = connect([cleartext, ok, ready_session()].concat())
        .err()
        .expect("cleartext answered by default");
    assert!(e.to_string().contains("require_auth=password"), "{e}");
}

#[test]
fn parameter_status_is_capped() {
    let mut many = vec![auth(0, b"")];
    for i in 0..=PARAMETER_COUNT_MAX {
        many.push(msg(b'S', format!("p{i}\0v\0").as_bytes()));
    }
    many.push(ready_session());
    let e = connect(many.concat())
        .err()
        .expect("too many parameters kept");
    assert!(e.to_string().contains("more parameters"), "{e}");
    // The same name again replaces its value: not counted twice.
    let mut same = vec![auth(0, b"")];
    for i in 0..=PARAMETER_COUNT_MAX {
        same.push(msg(b'S', format!("p\0{i}\0").as_bytes()));
    }
    same.push(ready_session());
    let c = connect(same.concat()).unwrap();
    assert_eq!(
        c.parameter("p"),
        Some(PARAMETER_COUNT_MAX.to_string().as_str())
    );
    // Few names, but too many bytes.
    let big = "x".repeat(PARAMETERS_SIZE_MAX / 2);
    let script = [
        auth(0, b""),
        msg(b'S', format!("a\0{big}\0").as_bytes()),
        msg(b'S', format!("b\0{big}\0").as_bytes()),
        ready_session(),
    ]
    .concat();
    let e = connect(script)
        .err()
        .expect("too many parameter bytes kept");
    assert!(e.to_string().contains("more parameters"), "{e}");
}

/// A DataRow of one text value.
fn data_row(value: &[u8]) -> Vec<u8> {
    let mut body = 1i16.to_be_bytes().to_vec();
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(value);
    msg(b'D', &body)
}

#[test]
fn query_answers_are_capped() {
    let value = vec![b'x'; 1024 * 1024];
    let rows_max = QUERY_ANSWER_SIZE_MAX / (value.len() + 64);
    let mut script = vec![auth(0, b""), ready_session()];
    // One answer over the cap, then one under it.
    for count in [rows_max + 1, rows_max] {
        for _ in 0..count {
            script.push(data_row(&value));
        }
        script.push(msg(b'C', b"SELECT\0"));
        script.push(msg(b'Z', b"I"));
    }
    let mut c = connect(script.concat()).unwrap();
    let e = futures_lite::future::block_on(c.query("SELECT big")).unwrap_err();
    assert!(
        matches!(e, PgError::Protocol(ref m) if m.contains("exceeds 16777216 bytes")),
        "{e}"
    );
    // The answer was read to its end: the client is still in step.
    let rows = futures_lite::future::block_on(c.query("SELECT big")).unwrap();
    assert_eq!(rows.len(), rows_max);
}

#[test]
fn split_load_runs_in_one_transaction() {
    use crate::plan::copy_plan;
    let plan = copy_plan("t", None, Some("csv")).unwrap();
    let columns = |names: &[&str]| -> Vec<u8> {
        let mut out = vec![msg(b'T', b"")];
        for n in names {
            let mut body = 3i16.to_be_bytes().to_vec();
            for v in [n.as_bytes(), b"text"] {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v);
            }
            body.extend_from_slice(&(-1i32).to_be_bytes());
            out.push(msg(b'D', &body));
        }
        out.push(msg(b'C', b"SELECT\0"));
        out.push(msg(b'Z', b"T"));
        out.concat()
    };
    let script = [
        auth(0, b""),
        ready_session(),
        msg(b'C', b"BEGIN\0"),
        msg(b'Z', b"T"),
        columns(&["a", "b"]),
        msg(b'G', &[0, 0, 0]),
    ]
    .concat();
    let mut c = connect(script).unwrap();
    c.io.get_mut().after_copy_done = [
        msg(b'C', b"COPY 1\0"),
        msg(b'Z', b"T"),
        msg(b'C', b"COMMIT\0"),
        msg(b'Z', b"I"),
    ]
    .concat();
    use futures_lite::future::block_on;
    let e = block_on(c.finish_load(&Batch {
        sql: "COPY t FROM STDIN".into(),
        body: Vec::new(),
        row_count: 0,
    }))
    .unwrap_err();
    assert!(e.to_string().contains("none is open"), "{e}");
    let table = block_on(c.begin_load(&plan)).unwrap();
    assert_eq!(
        table.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(c.transaction_status, b'T');
    // Another load cannot start inside this one.
    let e = block_on(c.load(&plan, b"1,2\n")).unwrap_err();
    assert!(e.to_string().contains("a transaction is open"), "{e}");
    // Prepared elsewhere (a worker thread in Firehose), sent here.
    let batch = std::thread::spawn(move || plan.prepare(b"1,2\n", &table))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(block_on(c.finish_load(&batch)).unwrap(), 1);
    assert_eq!(c.transaction_status, b'I');
    // BEGIN, the columns, COPY, one CopyData, CopyDone, COMMIT.
    assert_eq!(sent_tags(&c.io.get_ref().written), b"QQQdcQ");
    let e = block_on(c.abort_load()).unwrap_err();
    assert!(e.to_string().contains("none is open"), "{e}");
}
