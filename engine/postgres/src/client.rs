//! The connection: startup and authentication (only the methods
//! `require_auth` allows), simple queries, COPY FROM STDIN, and a whole
//! Firehose batch loaded in one transaction, in one call (`load`) or split
//! around the batch's conversion (`begin_load`, `finish_load`, `abort_load`)
//! so the caller can convert on another thread.
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

use crate::auth::{AuthMethod, AuthMethods};
use crate::convert::{Batch, TableColumn};
use crate::error::{PgError, ServerError};
use crate::plan::CopyPlan;
use crate::scram::{self, ScramClient};
use crate::wire::{
    self, Body, COPY_CHUNK_SIZE_MAX, Message, PARAMETER_COUNT_MAX, PARAMETERS_SIZE_MAX,
    QUERY_ANSWER_SIZE_MAX,
};

/// Text rows of a query: one `Vec` per row, `None` for NULL.
pub type Rows = Vec<Vec<Option<String>>>;

/// An open, authenticated connection.
pub struct Client<S> {
    io: BufReader<S>,
    out: Vec<u8>,
    parameters: Vec<(String, String)>,
    /// Bytes of the names and values in `parameters`.
    parameters_size: usize,
    backend_key: Option<(i32, i32)>,
    /// ReadyForQuery's status: `I` idle, `T` in a transaction, `E` failed one.
    transaction_status: u8,
    /// [`Client::begin_load`] opened a transaction that
    /// [`Client::finish_load`] or [`Client::abort_load`] has not ended.
    load_open: bool,
    /// A call started and has not finished (its future was dropped).
    broken: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// [`Client::connect_with`] allowing the default methods
    /// ([`AuthMethods::default`]: all but cleartext).
    pub async fn connect(
        stream: S,
        database: &str,
        user: &str,
        password: &str,
    ) -> Result<Client<S>, PgError> {
        Client::connect_with(stream, database, user, password, AuthMethods::default()).await
    }

    /// Starts a session on `stream` as `user` in `database`
    /// (`application_name=riffle`, `client_encoding=UTF8`) and authenticates
    /// with whichever of trust, cleartext password, MD5 or SCRAM-SHA-256 the
    /// server asks for, if `require_auth` allows it; a method it does not
    /// allow fails with [`PgError::Auth`] before anything is sent. Once SASL
    /// has begun no other method is answered. A wrong password is the
    /// server's error (SQLSTATE 28P01).
    pub async fn connect_with(
        stream: S,
        database: &str,
        user: &str,
        password: &str,
        require_auth: AuthMethods,
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
            parameters_size: 0,
            backend_key: None,
            transaction_status: b'I',
            load_open: false,
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
        // The method the server asked for, once it asked for one.
        let mut asked: Option<AuthMethod> = None;
        loop {
            let m = client.read().await?;
            match m.tag {
                b'R' => {
                    let mut body = Body::new(&m.body);
                    let code = body.i32()?;
                    let method = match code {
                        0 => asked.unwrap_or(AuthMethod::None),
                        3 => AuthMethod::Password,
                        5 => AuthMethod::Md5,
                        10..=12 => AuthMethod::ScramSha256,
                        _ => AuthMethod::None,
                    };
                    if scram.is_some() && !matches!(code, 0 | 11 | 12) {
                        return Err(PgError::Auth(format!(
                            "the server asks for {} (code {code}) after SCRAM-SHA-256 began; refused",
                            auth_request_name(code)
                        )));
                    }
                    if matches!(code, 0 | 3 | 5 | 10) {
                        require_auth.check(method).map_err(PgError::Auth)?;
                        asked.get_or_insert(method);
                    }
                    match code {
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
                            return Err(PgError::Auth(format!(
                                "the server asks for {} (code {other}); this client does trust, password, md5 and scram-sha-256",
                                auth_request_name(other)
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
        let mut answer_size = 0usize;
        let mut error = None;
        loop {
            let m = self.read().await?;
            match m.tag {
                b'T' | b'C' | b'I' | b'd' | b'c' | b'H' => {}
                b'D' if error.is_none() => {
                    let row = wire::data_row(&m.body)?;
                    answer_size = answer_size.saturating_add(
                        m.body.len() + row.len() * std::mem::size_of::<Option<String>>(),
                    );
                    if answer_size > QUERY_ANSWER_SIZE_MAX {
                        rows = Vec::new();
                        error = Some(PgError::Protocol(format!(
                            "the server's answer to a query exceeds {QUERY_ANSWER_SIZE_MAX} bytes"
                        )));
                    } else {
                        rows.push(row);
                    }
                }
                b'D' => {}
                b'E' => {
                    error.get_or_insert(PgError::Server(Box::new(ServerError::parse(&m.body))));
                }
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
            Some(e) => Err(e),
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
    /// `pg_attribute` ([`CopyPlan::columns_sql`]: the table COPY would
    /// find); empty when no such table exists.
    pub async fn table_columns(&mut self, plan: &CopyPlan) -> Result<Vec<TableColumn>, PgError> {
        let rows = self.query(&plan.columns_sql()).await?;
        rows.iter()
            .map(|r| TableColumn::from_row(r).map_err(PgError::Protocol))
            .collect()
    }

    /// Loads one Firehose batch (already gunzipped when `plan.gzip`) with
    /// Redshift's COPY semantics, in one transaction: [`Client::begin_load`],
    /// [`CopyPlan::prepare`] here, on the caller's thread, then
    /// [`Client::finish_load`]. Returns the rows loaded. Any failure rolls
    /// everything back. A caller that must not spend CPU on its own thread
    /// (converting 128 MiB takes about a second) makes those three calls
    /// itself and runs `prepare` elsewhere.
    pub async fn load(&mut self, plan: &CopyPlan, data: &[u8]) -> Result<u64, PgError> {
        let table = self.begin_load(plan).await?;
        match plan.prepare(data, &table) {
            Ok(batch) => self.finish_load(&batch).await,
            Err(e) => {
                self.abort_load().await?;
                Err(PgError::Data(e))
            }
        }
    }

    /// The first half of a load: BEGIN, then the target table's columns
    /// ([`Client::table_columns`]), for [`CopyPlan::prepare`]. On `Ok` the
    /// load's transaction stays open: end it with [`Client::finish_load`]
    /// (or [`Client::abort_load`] when the batch cannot be prepared); other
    /// calls in between run inside it. On `Err` nothing is left open. A
    /// table without columns the user can see fails with the server's error
    /// (42P01 no such table, 42501 permission denied). Must not be called
    /// inside a transaction.
    pub async fn begin_load(&mut self, plan: &CopyPlan) -> Result<Vec<TableColumn>, PgError> {
        self.need_idle()?;
        self.query("BEGIN").await?;
        match self.load_columns(plan).await {
            Ok(table) => {
                self.load_open = true;
                Ok(table)
            }
            Err(e) => self.finish_transaction(Err(e)).await.map(|_| Vec::new()),
        }
    }

    async fn load_columns(&mut self, plan: &CopyPlan) -> Result<Vec<TableColumn>, PgError> {
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
        Ok(table)
    }

    /// The second half of a load: COPY `batch` (from [`CopyPlan::prepare`]
    /// with [`Client::begin_load`]'s columns), then COMMIT; the rows loaded.
    /// On any failure the transaction is rolled back and nothing is loaded.
    pub async fn finish_load(&mut self, batch: &Batch) -> Result<u64, PgError> {
        self.take_load()?;
        let result = self.copy_raw(&batch.sql, &batch.body).await;
        self.finish_transaction(result).await
    }

    /// Ends a load begun with [`Client::begin_load`] without loading
    /// anything (ROLLBACK): for a batch [`CopyPlan::prepare`] refused.
    pub async fn abort_load(&mut self) -> Result<(), PgError> {
        self.take_load()?;
        self.query("ROLLBACK").await?;
        Ok(())
    }

    fn take_load(&mut self) -> Result<(), PgError> {
        if !std::mem::take(&mut self.load_open) {
            return Err(PgError::Protocol(
                "finish_load and abort_load end a load begun with begin_load; none is open".into(),
            ));
        }
        Ok(())
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
                "a transaction is open: copy_in, load and begin_load run their own".into(),
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
                if let Some(i) = self.parameters.iter().position(|(n, _)| *n == name) {
                    let (n, v) = self.parameters.remove(i);
                    self.parameters_size -= n.len() + v.len();
                }
                self.parameters_size += name.len() + value.len();
                self.parameters.push((name, value));
                if self.parameters.len() > PARAMETER_COUNT_MAX
                    || self.parameters_size > PARAMETERS_SIZE_MAX
                {
                    return Err(PgError::Protocol(format!(
                        "the server reported more parameters (ParameterStatus) than this client keeps \
                         ({PARAMETER_COUNT_MAX} names, {PARAMETERS_SIZE_MAX} bytes)"
                    )));
                }
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

/// What an Authentication request's code asks for, in an error.
fn auth_request_name(code: i32) -> &'static str {
    match code {
        2 => "Kerberos V5",
        3 => "a cleartext password",
        5 => "MD5",
        6 => "SCM credentials",
        7 | 8 => "GSSAPI",
        9 => "SSPI",
        10 => "SASL",
        _ => "an unknown method",
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
#[path = "client_tests.rs"]
mod tests;
