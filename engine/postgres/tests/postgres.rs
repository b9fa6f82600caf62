//! riffle-postgres against a real PostgreSQL (Debian's `postgresql`): every
//! authentication method, queries, COPY in text/CSV/JSON 'auto' read back
//! with queries, and the failures Firehose must report (SQLSTATE 28P01,
//! 42P01, a bad row leaving nothing behind).
//!
//! Each test uses its own table, so they run in parallel on one cluster.
//! Async code runs on Riffle's own executor (`rt::block_on_local`) over
//! `rt::net::Connection`, the stream type the server will use.

mod common;

use common::{connect, connect_as, connect_with_auth, row, run};
use riffle_postgres::{PgError, copy_plan};

#[test]
fn scram_connect_and_query() {
    run(|| async {
        let mut c = connect().await;
        assert!(c.parameter("server_version").is_some());
        assert_eq!(c.parameter("client_encoding"), Some("UTF8"));
        assert!(c.backend_key().is_some());
        let rows = c
            .query("SELECT 1, NULL::text, 'it''s', current_setting('application_name')")
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![row(&[Some("1"), None, Some("it's"), Some("riffle")])]
        );
        let rows = c
            .query("SELECT 'a' UNION ALL SELECT 'b' ORDER BY 1; SELECT 'c'")
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![row(&[Some("a")]), row(&[Some("b")]), row(&[Some("c")])]
        );
        assert_eq!(
            c.query("").await.unwrap(),
            Vec::<Vec<Option<String>>>::new()
        );
        let method = c
            .query("SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = 'riffle'")
            .await
            .unwrap();
        assert_eq!(method, vec![row(&[Some("SCRAM-SHA-256")])]);
        c.close().await.unwrap();
    });
}

#[test]
fn wrong_password_is_28p01() {
    run(|| async {
        let e = connect_as("riffle", "wrong")
            .await
            .err()
            .expect("connected with a wrong password");
        let PgError::Server(s) = &e else {
            panic!("{e}")
        };
        assert_eq!(
            (s.code.as_str(), s.severity.as_str()),
            ("28P01", "FATAL"),
            "{e}"
        );
        assert!(s.message.contains("password authentication failed"), "{e}");
        let e = connect_as("riffle", "")
            .await
            .err()
            .expect("connected without a password");
        assert!(matches!(e, PgError::Auth(_)), "{e}");
        let e = connect_as("nobody", "x")
            .await
            .err()
            .expect("connected as nobody");
        assert_eq!(e.code(), Some("28P01"), "{e}");
    });
}

#[test]
fn md5_cleartext_and_trust() {
    run(|| async {
        for (user, password, require_auth) in [
            ("riffle_md5", "riffle", "md5"),
            ("riffle_plain", "riffle", "password"),
            ("riffle_trust", "", "none"),
        ] {
            let mut c = connect_with_auth(user, password, require_auth)
                .await
                .unwrap_or_else(|e| panic!("{user}: {e}"));
            assert_eq!(
                c.query("SELECT current_user").await.unwrap(),
                vec![row(&[Some(user)])]
            );
        }
        let e = connect_as("riffle_md5", "nope")
            .await
            .err()
            .expect("md5 with a wrong password");
        assert_eq!(e.code(), Some("28P01"), "{e}");
        // By default the password is not sent in cleartext.
        let e = connect_as("riffle_plain", "riffle")
            .await
            .err()
            .expect("cleartext answered by default");
        assert!(
            matches!(e, PgError::Auth(ref m) if m.contains("require_auth=password")),
            "{e}"
        );
        // Allowed methods that are not the server's: refused before answering.
        for (user, password, require_auth) in [
            ("riffle", "riffle", "md5,password"),
            ("riffle_md5", "riffle", "scram-sha-256"),
            ("riffle_trust", "", "scram-sha-256"),
        ] {
            let e = connect_with_auth(user, password, require_auth)
                .await
                .err()
                .expect(user);
            assert!(
                matches!(e, PgError::Auth(ref m) if m.contains("require_auth does not allow")),
                "{user}: {e}"
            );
        }
        connect_with_auth("riffle", "riffle", "scram-sha-256")
            .await
            .unwrap();
    });
}

#[test]
fn errors_leave_the_client_usable() {
    run(|| async {
        let mut c = connect().await;
        let e = c.query("SELEC 1").await.unwrap_err();
        assert_eq!(e.code(), Some("42601"), "{e}");
        let e = c.copy_in("SELECT 1", b"").await.unwrap_err();
        assert!(
            matches!(e, PgError::Protocol(ref m) if m.contains("COPY ... FROM STDIN")),
            "{e}"
        );
        // COPY FROM STDIN through query() is failed by the client, not hung.
        c.query("CREATE TABLE usable (a int)").await.unwrap();
        let e = c.query("COPY usable FROM STDIN").await.unwrap_err();
        assert_eq!(e.code(), Some("57014"), "{e}");
        assert_eq!(c.query("SELECT 2").await.unwrap(), vec![row(&[Some("2")])]);
        let e = c.query("SELECT 1\0; DROP TABLE usable").await.unwrap_err();
        assert!(matches!(e, PgError::Protocol(_)), "{e}");
    });
}

#[test]
fn a_cancelled_call_breaks_the_client() {
    run(|| async {
        let mut c = connect().await;
        // One poll starts the call; dropping it leaves the exchange halfway.
        let _ = futures_lite::future::poll_once(c.query("SELECT 1")).await;
        let e = c.query("SELECT 1").await.unwrap_err();
        assert!(
            matches!(e, PgError::Protocol(ref m) if m.contains("reconnect")),
            "{e}"
        );
    });
}

#[test]
fn copy_in_text_and_read_back() {
    run(|| async {
        let mut c = connect().await;
        c.query("CREATE TABLE raw_text (id int, name text)")
            .await
            .unwrap();
        let n = c
            .copy_in("COPY raw_text FROM STDIN", b"1\tann\n2\t\\N\n")
            .await
            .unwrap();
        assert_eq!(n, 2);
        let rows = c
            .query("SELECT id, name FROM raw_text ORDER BY id")
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![row(&[Some("1"), Some("ann")]), row(&[Some("2"), None])]
        );
        let e = c.copy_in("COPY nope FROM STDIN", b"1\n").await.unwrap_err();
        assert_eq!(e.code(), Some("42P01"), "{e}");
    });
}

#[test]
fn load_redshift_text() {
    run(|| async {
        let mut c = connect().await;
        c.query("CREATE TABLE ev_text (id int, name varchar(5), note text)")
            .await
            .unwrap();
        let plan = copy_plan(
            "EV_TEXT",
            None,
            Some("delimiter '|' escape truncatecolumns"),
        )
        .unwrap();
        let data = b"1|ann|back\\\\slash\n2|\\|bar|multi\\\nline\n\\N|abcdefgh|\n3||\\N\n";
        assert_eq!(c.load(&plan, data).await.unwrap(), 4);
        let rows = c
            .query("SELECT id, name, note FROM ev_text ORDER BY id NULLS LAST")
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![
                row(&[Some("1"), Some("ann"), Some("back\\slash")]),
                row(&[Some("2"), Some("|bar"), Some("multi\nline")]),
                row(&[Some("3"), Some(""), None]),
                row(&[None, Some("abcde"), Some("")]),
            ]
        );
    });
}

#[test]
fn load_csv_into_a_schema() {
    run(|| async {
        let mut c = connect().await;
        c.query("CREATE SCHEMA sales; CREATE TABLE sales.ev_csv (id int, name text, ts timestamp)")
            .await
            .unwrap();
        let plan = copy_plan(
            "sales.ev_csv",
            Some("name, id, ts"),
            Some("CSV IGNOREHEADER 1 EMPTYASNULL timeformat 'auto'"),
        )
        .unwrap();
        let data = b"name,id,ts\r\n\"say \"\"hi\"\"\",1,2024-05-01 10:00:00\r\n\"a,b\",2,\r\n,3,2024-05-01T12:30:00Z\r\n";
        assert_eq!(c.load(&plan, data).await.unwrap(), 3);
        let rows = c
            .query("SELECT id, name, ts::text FROM sales.ev_csv ORDER BY id")
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![
                row(&[Some("1"), Some("say \"hi\""), Some("2024-05-01 10:00:00")]),
                row(&[Some("2"), Some("a,b"), None]),
                row(&[Some("3"), None, Some("2024-05-01 12:30:00")]),
            ]
        );
    });
}

#[test]
fn load_json_auto() {
    run(|| async {
        let mut c = connect().await;
        c.query("CREATE TABLE ev_json (id int, price numeric(30,10), name text, attrs jsonb, ok boolean)")
            .await
            .unwrap();
        let plan = copy_plan("ev_json", None, Some("format as json 'auto' gzip")).unwrap();
        assert!(plan.gzip);
        let data = br#"{"id": 1, "price": 12345678901234567890.1234567891, "name": "ann", "attrs": {"k": [1, "x"]}, "ok": true}
{"id": 2, "Name": "ignored: case differs", "extra": 5}{"id":3,"name":"quote \" and \\ and \u00e9","ok":false}"#;
        assert_eq!(c.load(&plan, data).await.unwrap(), 3);
        let rows = c
            .query("SELECT id, price, name, attrs::text, ok FROM ev_json ORDER BY id")
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![
                row(&[
                    Some("1"),
                    Some("12345678901234567890.1234567891"),
                    Some("ann"),
                    Some(r#"{"k": [1, "x"]}"#),
                    Some("t")
                ]),
                row(&[Some("2"), None, None, None, None]),
                row(&[
                    Some("3"),
                    None,
                    Some("quote \" and \\ and \u{e9}"),
                    None,
                    Some("f")
                ]),
            ]
        );
        let ci = copy_plan("ev_json", Some("id, name"), Some("json 'auto ignorecase'")).unwrap();
        assert_eq!(
            c.load(&ci, br#"{"ID": 4, "NAME": "bob"}"#).await.unwrap(),
            1
        );
        let rows = c
            .query("SELECT name FROM ev_json WHERE id = 4")
            .await
            .unwrap();
        assert_eq!(rows, vec![row(&[Some("bob")])]);
    });
}

#[test]
fn a_bad_row_loads_nothing() {
    run(|| async {
        let mut c = connect().await;
        c.query("CREATE TABLE ev_bad (id int, name text)")
            .await
            .unwrap();
        let plan = copy_plan("ev_bad", None, Some("csv")).unwrap();
        // Several CopyData chunks; the bad row is near the end.
        let mut data = Vec::new();
        for i in 0..50_000 {
            data.extend_from_slice(format!("{i},name {i}\n").as_bytes());
        }
        data.extend_from_slice(b"x,bad\n1,after\n");
        assert!(data.len() > 8 * riffle_postgres::COPY_CHUNK_SIZE_MAX);
        let e = c.load(&plan, &data).await.unwrap_err();
        let PgError::Server(s) = &e else {
            panic!("{e}")
        };
        assert_eq!(s.code, "22P02", "{e}");
        assert!(
            s.context.as_deref().unwrap_or("").contains("line 50001"),
            "{e}"
        );
        assert_eq!(
            c.query("SELECT count(*) FROM ev_bad").await.unwrap(),
            vec![row(&[Some("0")])]
        );
        // A bad row at the start: the server fails while data is still being sent.
        let mut early = b"x,bad\n".to_vec();
        early.extend_from_slice(&data[..data.len() - 14]);
        let e = c.load(&plan, &early).await.unwrap_err();
        assert_eq!(e.code(), Some("22P02"), "{e}");
        // The same client loads the good rows afterwards.
        let good = &data[..data.len() - 14];
        assert_eq!(c.load(&plan, good).await.unwrap(), 50_000);
        assert_eq!(
            c.query("SELECT count(*), sum(id) FROM ev_bad")
                .await
                .unwrap(),
            vec![row(&[Some("50000"), Some("1249975000")])]
        );
    });
}

#[test]
fn batches_the_options_cannot_read_load_nothing() {
    run(|| async {
        let mut c = connect().await;
        c.query("CREATE TABLE ev_data (id int, name text)")
            .await
            .unwrap();
        let plan = copy_plan("ev_data", None, Some("json 'auto'")).unwrap();
        let e = c.load(&plan, b"{\"id\": 1}\n[2]").await.unwrap_err();
        assert!(
            matches!(e, PgError::Data(ref m) if m.contains("found an array")),
            "{e}"
        );
        let text = copy_plan("ev_data", None, None).unwrap();
        let e = c.load(&text, b"1|a\n2|b|c\n").await.unwrap_err();
        assert!(
            matches!(e, PgError::Data(ref m) if m.contains("line 2: Extra column(s)")),
            "{e}"
        );
        assert_eq!(
            c.query("SELECT count(*) FROM ev_data").await.unwrap(),
            vec![row(&[Some("0")])]
        );
    });
}

#[test]
fn a_missing_table_is_42p01() {
    run(|| async {
        let mut c = connect().await;
        let plan = copy_plan("no_such_table", None, Some("json 'auto'")).unwrap();
        let e = c.load(&plan, b"{\"id\": 1}").await.unwrap_err();
        let PgError::Server(s) = &e else {
            panic!("{e}")
        };
        assert_eq!(
            (s.code.as_str(), s.severity.as_str()),
            ("42P01", "ERROR"),
            "{e}"
        );
        assert!(s.message.contains("no_such_table"), "{e}");
        let plan = copy_plan("nowhere.t", Some("a"), None).unwrap();
        let e = c.load(&plan, b"1\n").await.unwrap_err();
        assert_eq!(e.code(), Some("3F000"), "{e}");
        let plan = copy_plan("ev_missing_col", Some("id, nope"), None).unwrap();
        c.query("CREATE TABLE ev_missing_col (id int)")
            .await
            .unwrap();
        let e = c.load(&plan, b"1|2\n").await.unwrap_err();
        assert_eq!(e.code(), Some("42703"), "{e}");
    });
}

/// An unqualified table is found as COPY finds it: along the whole
/// search_path. With `"$user", public` and a schema named after the user,
/// `current_schema()` is that schema while the table is in public.
#[test]
fn load_follows_the_search_path() {
    run(|| async {
        let mut admin = connect().await;
        admin
            .query(
                "CREATE ROLE riffle_sp LOGIN PASSWORD 'sp'; \
                 CREATE SCHEMA riffle_sp AUTHORIZATION riffle_sp; \
                 GRANT CREATE ON SCHEMA public TO riffle_sp",
            )
            .await
            .unwrap();
        let mut c = connect_as("riffle_sp", "sp").await.unwrap();
        c.query(
            "CREATE TABLE public.ev_path (id int, name varchar(3), gone text, note text); \
                 ALTER TABLE public.ev_path DROP COLUMN gone",
        )
        .await
        .unwrap();
        assert_eq!(
            c.query("SHOW search_path; SELECT current_schema()")
                .await
                .unwrap(),
            vec![row(&[Some("\"$user\", public")]), row(&[Some("riffle_sp")])]
        );
        let plan = copy_plan("ev_path", None, Some("truncatecolumns")).unwrap();
        assert_eq!(c.load(&plan, b"1|abcdef|x\n").await.unwrap(), 1);
        // A table of the same name earlier on the path wins, for both.
        c.query("CREATE TABLE riffle_sp.ev_path (id int, label text)")
            .await
            .unwrap();
        assert_eq!(c.load(&plan, b"2|first\n").await.unwrap(), 1);
        assert_eq!(
            c.query(
                "SELECT id, name, note FROM public.ev_path; SELECT id, label FROM riffle_sp.ev_path"
            )
            .await
            .unwrap(),
            vec![
                row(&[Some("1"), Some("abc"), Some("x")]),
                row(&[Some("2"), Some("first")]),
            ]
        );
    });
}

/// begin_load and finish_load with the batch prepared on another thread,
/// as Firehose does on its workers; abort_load for a batch it refused.
#[test]
fn split_load_with_prepare_elsewhere() {
    run(|| async {
        let mut c = connect().await;
        c.query("CREATE TABLE ev_split (id int, name char(4), note text)")
            .await
            .unwrap();
        let plan = copy_plan("ev_split", None, Some("csv delimiter '\\t' fillrecord")).unwrap();
        let table = c.begin_load(&plan).await.unwrap();
        let types: Vec<_> = table
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.data_type.as_str(),
                    t.character_maximum_length,
                )
            })
            .collect();
        assert_eq!(
            types,
            [
                ("id", "integer", None),
                ("name", "character", Some(4)),
                ("note", "text", None)
            ]
        );
        let worker_plan = plan.clone();
        let batch = std::thread::spawn(move || {
            worker_plan.prepare(b"1\t\"ab\"\t\"x\"\n2\t\t\"z\"\n3\t\"c\"\n", &table)
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(c.finish_load(&batch).await.unwrap(), 3);
        assert_eq!(
            c.query("SELECT id, name, note FROM ev_split ORDER BY id")
                .await
                .unwrap(),
            vec![
                row(&[Some("1"), Some("ab  "), Some("x")]),
                row(&[Some("2"), Some("    "), Some("z")]),
                row(&[Some("3"), Some("c   "), Some("")]),
            ]
        );
        // A batch that cannot be prepared: nothing is loaded, the client goes on.
        let table = c.begin_load(&plan).await.unwrap();
        c.query("INSERT INTO ev_split VALUES (9, 'tx', 'rolled back')")
            .await
            .unwrap();
        assert!(plan.prepare(b"1\t\"open\n", &table).is_err());
        c.abort_load().await.unwrap();
        assert_eq!(
            c.query("SELECT count(*) FROM ev_split").await.unwrap(),
            vec![row(&[Some("3")])]
        );
        // A missing table: begin_load fails and leaves no transaction open.
        let missing = copy_plan("ev_nowhere", None, None).unwrap();
        let e = c.begin_load(&missing).await.unwrap_err();
        assert_eq!(e.code(), Some("42P01"), "{e}");
        assert_eq!(c.load(&plan, b"4\t\"d\"\n").await.unwrap(), 1);
    });
}
