//! The connection: startup and authentication, simple queries, COPY FROM
//! STDIN, and a whole Firehose batch loaded in one transaction.
//!
//! Generic over any `AsyncRead + AsyncWrite + Unpin` byte stream (Riffle's
//! `riffle_engine::rt::net::Connection` in the server, anything in tests);
//! runtime-agnostic, single-owner, one call at a time (`&mut self`).
//!
//! Cancellation: a timeout is the caller's (wrap a call in one). Dropping a
//! call's future halfway leaves the protocol mid-exchange, so the client
//! marks itself broken when a call starts and clear when it ends: every later
//! call on a broken client fails with [`PgError::Protocol`] without touching
//! the stream. Drop the client (closing the connection: PostgreSQL rolls an
//! open transaction back) and connect again.

use futures_lite::io::BufReader;
use futures_lite::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::convert::TableColumn;
use crate::error::{PgError, ServerError};
use crate::plan::CopyPlan;
use crate::scram::{self, ScramClient};
use crate::wire::{self, Body, COPY_CHUNK_SIZE_MAX, Message};

/// Text rows of a query: one `Vec` per row, `None` for NULL.
pub type Rows = Vec<Vec<Option<String>>>;

/// An open, authenticated connection.
pub struct Client<S> {
    io: BufReader<S>,
    out: Vec<u8>,
    parameters: Vec<(String, String)>,
    backend_key: Option<(i32, i32)>,
    /// ReadyForQuery's status: `I` idle, `T` in a transaction, `E` failed one.
    transaction_status: u8,
    /// A call started and has not finished (its future was dropped).
    broken: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Starts a session on `stream` as `user` in `database`
    /// (`application_name=riffle`, `client_encoding=UTF8`) and authenticates:
    /// trust, cleartext password, MD5 or SCRAM-SHA-256, whichever the server
    /// asks for. A wrong password is the server's error (SQLSTATE 28P01).
    pub async fn connect(
        stream: S,
        database: &str,
        user: &str,
        password: &str,
    ) -> Result<Client<S>, PgError> {
        for (name, value) in [("database", database), ("user", user)] {
            if value.is_empty() || value.contains('\0') {
                return Err(PgError::Auth(format!(
                    "the {name} name must be non-empty and without NUL"
                )));
            }
        }
        let mut client = Client {
            io: BufReader::new(stream),
            out: Vec::new(),
            parameters: Vec::new(),
            backend_key: None,
            transaction_status: b'I',
            broken: true,
        };
        wire::startup(
            &mut client.out,
            &[
                ("user", user),
                ("database", database),
                ("application_name", "riffle"),
                ("client_encoding", "UTF8"),
            ],
        );
        client.send().await?;
        let mut scram: Option<ScramClient> = None;
        let mut scram_verified = false;
        loop {
            let m = client.read().await?;
            match m.tag {
                b'R' => {
                    let mut body = Body::new(&m.body);
                    match body.i32()? {
                        0 => {
                            if scram.is_some() && !scram_verified {
                                return Err(PgError::Auth(
                                    "the server ended SCRAM without proving it knows the password"
                                        .into(),
                                ));
                            }
                        }
                        3 => {
                            let password = need_password(password)?;
                            wire::password(&mut client.out, password.as_bytes());
                            client.send().await?;
                        }
                        5 => {
                            let password = need_password(password)?;
                            let salt: [u8; 4] = body
                                .bytes(4)?
                                .try_into()
                                .map_err(|_| PgError::Protocol("MD5 salt".into()))?;
                            let answer = scram::md5_password(user, password, &salt);
                            wire::password(&mut client.out, answer.as_bytes());
                            client.send().await?;
                        }
                        10 => {
                            let password = need_password(password)?;
                            let mut mechanisms = Vec::new();
                            loop {
                                let name = body.cstr()?;
                                if name.is_empty() {
                                    break;
                                }
                                mechanisms.push(name.to_string());
                            }
                            if !mechanisms.iter().any(|m| m == scram::MECHANISM) {
                                return Err(PgError::Auth(format!(
                                    "the server offers SASL {mechanisms:?}; this client speaks SCRAM-SHA-256"
                                )));
                            }
                            let nonce = scram::random_nonce()?;
                            let s = ScramClient::new("", password, nonce);
                            wire::sasl_initial_response(
                                &mut client.out,
                                scram::MECHANISM,
                                s.client_first().as_bytes(),
                            );
                            scram = Some(s);
                            client.send().await?;
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                PgError::Protocol("SASLContinue before SASL".into())
                            })?;
                            let server_first = std::str::from_utf8(body.rest()).map_err(|_| {
                                PgError::Protocol("server-first-message is not UTF-8".into())
                            })?;
                            let answer = s.client_final(server_first).map_err(PgError::Auth)?;
                            wire::sasl_response(&mut client.out, answer.as_bytes());
                            client.send().await?;
                        }
                        12 => {
                            let s = scram
                                .as_ref()
                                .ok_or_else(|| PgError::Protocol("SASLFinal before SASL".into()))?;
                            let server_final = std::str::from_utf8(body.rest()).map_err(|_| {
                                PgError::Protocol("server-final-message is not UTF-8".into())
                            })?;
                            s.verify_server_final(server_final).map_err(PgError::Auth)?;
                            scram_verified = true;
                        }
                        other => {
                            let name = match other {
                                2 => "Kerberos V5",
                                6 => "SCM credentials",
                                7 | 8 => "GSSAPI",
                                9 => "SSPI",
                                _ => "an unknown method",
                            };
                            return Err(PgError::Auth(format!(
                                "the server asks for {name} (code {other}); this client does trust, password, md5 and scram-sha-256"
                            )));
                        }
                    }
                }
                b'E' => return Err(PgError::Server(Box::new(ServerError::parse(&m.body)))),
                b'Z' => {
                    client.ready(&m)?;
                    break;
                }
                _ => client.background(&m)?,
            }
        }
        if client.parameter("standard_conforming_strings") != Some("on") {
            return Err(PgError::Protocol(
                "the server runs with standard_conforming_strings off; Riffle's quoting needs it on".into(),
            ));
        }
        if !client
            .parameter("client_encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("UTF8"))
        {
            return Err(PgError::Protocol(
                "the server did not accept client_encoding UTF8".into(),
            ));
        }
        client.broken = false;
        Ok(client)
    }

    /// A ParameterStatus the server reported (`server_version`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// BackendKeyData: (process id, secret key), for a cancel request.
    pub fn backend_key(&self) -> Option<(i32, i32)> {
        self.backend_key
    }

    /// Runs `sql` (one or more statements, simple protocol) and returns every
    /// row of every result as text. A server error comes back after the
    /// server is ready again, so the client stays usable.
    pub async fn query(&mut self, sql: &str) -> Result<Rows, PgError> {
        self.begin_call(sql)?;
        wire::query(&mut self.out, sql);
        self.send().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let m = self.read().await?;
            match m.tag {
                b'T' | b'C' | b'I' | b'd' | b'c' | b'H' => {}
                b'D' => rows.push(wire::data_row(&m.body)?),
                b'E' => error = Some(ServerError::parse(&m.body)),
                b'G' => {
                    wire::copy_fail(
                        &mut self.out,
                        "COPY FROM STDIN goes through copy_in, not query",
                    );
                    self.send().await?;
                }
                b'Z' => {
                    self.ready(&m)?;
                    break;
                }
                _ => self.background(&m)?,
            }
        }
        self.broken = false;
        match error {
            Some(e) => Err(PgError::Server(Box::new(e))),
            None => Ok(rows),
        }
    }

    /// Runs `sql` (a `COPY ... FROM STDIN`) with `data` as its input, inside
    /// `BEGIN` ... `COMMIT`, and returns the server's row count. On an error
    /// the transaction is rolled back, so a failed COPY leaves nothing behind.
    /// Must not be called inside a transaction of the caller's.
    pub async fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<u64, PgError> {
        self.need_idle()?;
        self.query("BEGIN").await?;
        let result = self.copy_raw(sql, data).await;
        self.finish_transaction(result).await
    }

    /// The target table's columns (name, type, length), in order, from
    /// `information_schema.columns`; empty when the table does not exist or
    /// the user may not see it.
    pub async fn table_columns(&mut self, plan: &CopyPlan) -> Result<Vec<TableColumn>, PgError> {
        let rows = self.query(&plan.columns_sql()).await?;
        rows.iter()
            .map(|r| TableColumn::from_row(r).map_err(PgError::Protocol))
            .collect()
    }

    /// Loads one Firehose batch (already gunzipped when `plan.gzip`) with
    /// Redshift's COPY semantics, in one transaction: read the table's
    /// columns, convert the batch ([`CopyPlan::prepare`]), COPY, COMMIT.
    /// Returns the rows loaded. Any failure rolls everything back.
    pub async fn load(&mut self, plan: &CopyPlan, data: &[u8]) -> Result<u64, PgError> {
        self.need_idle()?;
        self.query("BEGIN").await?;
        let result = self.load_in_transaction(plan, data).await;
        self.finish_transaction(result).await
    }

    async fn load_in_transaction(&mut self, plan: &CopyPlan, data: &[u8]) -> Result<u64, PgError> {
        let table = self.table_columns(plan).await?;
        if plan.target_columns(&table).is_empty() {
            // No visible columns: let the server say why (42P01 no such
            // table, 42501 permission denied).
            self.copy_raw(&plan.copy_sql(&[]), b"").await?;
            return Err(PgError::Data(format!(
                "table {} has no columns this user can see",
                plan.table.to_sql()
            )));
        }
        let batch = plan.prepare(data, &table).map_err(PgError::Data)?;
        self.copy_raw(&batch.sql, &batch.body).await
    }

    /// COMMIT after success, ROLLBACK after any failure that left the
    /// protocol in step; a broken connection is left alone (closing it rolls
    /// back).
    async fn finish_transaction(&mut self, result: Result<u64, PgError>) -> Result<u64, PgError> {
        match result {
            Ok(n) => {
                self.query("COMMIT").await?;
                Ok(n)
            }
            Err(e) if !self.broken => {
                self.query("ROLLBACK").await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// One COPY FROM STDIN exchange, in whatever transaction is open.
    async fn copy_raw(&mut self, sql: &str, data: &[u8]) -> Result<u64, PgError> {
        self.begin_call(sql)?;
        wire::query(&mut self.out, sql);
        self.send().await?;
        let mut error: Option<PgError> = None;
        let mut count = None;
        loop {
            let m = self.read().await?;
            match m.tag {
                b'G' => {
                    if let Some(e) = self.stream_copy_data(data).await? {
                        error = Some(PgError::Server(Box::new(e)));
                    }
                }
                b'C' => {
                    let tag = Body::new(&m.body).cstr()?;
                    match tag
                        .strip_prefix("COPY ")
                        .and_then(|n| n.parse::<u64>().ok())
                    {
                        Some(n) => count = Some(n),
                        None => {
                            error.get_or_insert(PgError::Protocol(format!(
                                "copy_in needs a COPY ... FROM STDIN statement; the server ran '{tag}'"
                            )));
                        }
                    }
                }
                b'E' => error = Some(PgError::Server(Box::new(ServerError::parse(&m.body)))),
                b'T' | b'D' | b'I' => {}
                b'H' | b'd' | b'c' => {
                    error.get_or_insert(PgError::Protocol("copy_in cannot run COPY TO".into()));
                }
                b'Z' => {
                    self.ready(&m)?;
                    break;
                }
                _ => self.background(&m)?,
            }
        }
        self.broken = false;
        match (error, count) {
            (Some(e), _) => Err(e),
            (None, Some(n)) => Ok(n),
            (None, None) => Err(PgError::Protocol("COPY ended without a row count".into())),
        }
    }

    /// Sends `data` as CopyData chunks, then CopyDone. Between chunks it
    /// looks for anything the server sent: an ErrorResponse (a bad row) stops
    /// the data there, without CopyDone, and is returned.
    async fn stream_copy_data(&mut self, data: &[u8]) -> Result<Option<ServerError>, PgError> {
        for chunk in data.chunks(COPY_CHUNK_SIZE_MAX) {
            while self.incoming_ready().await? {
                let m = self.read().await?;
                match m.tag {
                    b'E' => return Ok(Some(ServerError::parse(&m.body))),
                    _ => self.background(&m)?,
                }
            }
            wire::copy_data(&mut self.out, chunk);
            self.send().await?;
        }
        wire::copy_done(&mut self.out);
        self.send().await?;
        Ok(None)
    }

    /// Whether bytes from the server are waiting, without waiting for any.
    async fn incoming_ready(&mut self) -> Result<bool, PgError> {
        match futures_lite::future::poll_once(self.io.fill_buf()).await {
            Some(Ok([])) => Err(PgError::Protocol(
                "the server closed the connection during COPY".into(),
            )),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(PgError::Io(e)),
            None => Ok(false),
        }
    }

    /// Ends the session (Terminate) and closes the stream.
    pub async fn close(mut self) -> Result<(), PgError> {
        wire::terminate(&mut self.out);
        self.send().await?;
        self.io.close().await?;
        Ok(())
    }

    fn begin_call(&mut self, sql: &str) -> Result<(), PgError> {
        if self.broken {
            return Err(PgError::Protocol(
                "the connection was left mid-call (a call was cancelled); reconnect".into(),
            ));
        }
        if sql.contains('\0') {
            return Err(PgError::Protocol(
                "SQL text cannot contain a NUL character".into(),
            ));
        }
        self.broken = true;
        Ok(())
    }

    fn need_idle(&self) -> Result<(), PgError> {
        if self.transaction_status != b'I' && !self.broken {
            return Err(PgError::Protocol(
                "a transaction is open: copy_in and load run their own".into(),
            ));
        }
        Ok(())
    }

    /// Handles messages that may come at any time.
    fn background(&mut self, m: &Message) -> Result<(), PgError> {
        match m.tag {
            b'S' => {
                let mut b = Body::new(&m.body);
                let name = b.cstr()?.to_string();
                let value = b.cstr()?.to_string();
                self.parameters.retain(|(n, _)| *n != name);
                self.parameters.push((name, value));
            }
            b'K' => {
                let mut b = Body::new(&m.body);
                self.backend_key = Some((b.i32()?, b.i32()?));
            }
            // NoticeResponse, NotificationResponse, NegotiateProtocolVersion.
            b'N' | b'A' | b'v' => {}
            other => {
                return Err(PgError::Protocol(format!(
                    "unexpected message '{}'",
                    other.escape_ascii()
                )));
            }
        }
        Ok(())
    }

    fn ready(&mut self, m: &Message) -> Result<(), PgError> {
        match m.body.as_slice() {
            [status @ (b'I' | b'T' | b'E')] => {
                self.transaction_status = *status;
                Ok(())
            }
            _ => Err(PgError::Protocol("bad ReadyForQuery".into())),
        }
    }

    async fn send(&mut self) -> Result<(), PgError> {
        let out = std::mem::take(&mut self.out);
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        self.out = out;
        self.out.clear();
        Ok(())
    }

    async fn read(&mut self) -> Result<Message, PgError> {
        wire::read_message(&mut self.io).await
    }
}

fn need_password(password: &str) -> Result<&str, PgError> {
    if password.is_empty() {
        return Err(PgError::Auth(
            "the server asks for a password and none was given".into(),
        ));
    }
    if password.contains('\0') {
        return Err(PgError::Auth(
            "the password contains a NUL character".into(),
        ));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
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
        let stream = Scripted {
            script,
            pos: 0,
            written: Vec::new(),
            after_copy_done: Vec::new(),
        };
        futures_lite::future::block_on(Client::connect(stream, "db", "u", "pw"))
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
}
