//! The fleet: hosts ship every record to a private PostgreSQL (Debian's package) — history
//! when they join, live records as they come — exactly once across a `kill -9` of the host
//! and an outage of the database; a host name claimed twice is reported, never merged.

mod support;

use mailtrail::store::fleet::tables::{ColumnType, ROLLUPS, SHIPPED, ShippedTable};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::maillog::{append, generated_postfix_log};
use support::mailtrail::Mailtrail;
use support::postgres::Postgres;
use support::util::{wait_for, wait_until};

const TOKEN: &str = "fleet-secret-0123456789abcdef";
const T: Duration = Duration::from_secs(120);

/// A generated postfix log of `lines` lines starting two days ago (its raw lines within
/// retention).
fn generated_log(lines: usize, seed: u64) -> String {
    generated_postfix_log(lines, seed, 2, 30_000)
}

fn split_at_fraction(text: &str, fraction: f64) -> (&str, &str) {
    let at = (text.len() as f64 * fraction) as usize;
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
    text.split_at(end)
}

fn fleet_daemon(pg: &Postgres, host: &str) -> Mailtrail {
    Mailtrail::configure_with_web(&format!(
        "[web]\nenabled = false\n\n[fleet]\ndatabase = \"{}\"\nhost = \"{host}\"\ntoken = \"{TOKEN}\"\n",
        pg.url()
    ))
}

fn import(mt: &Mailtrail, text: &str) {
    let file = mt.state_dir().with_file_name("history.log");
    std::fs::write(&file, text).unwrap();
    mt.command(&["import", file.to_str().unwrap()]);
}

/// One table's rows as text, one line per row in id order (reals to a thousandth), written
/// the same way from SQLite and PostgreSQL.
fn row_text(
    table: &ShippedTable,
    dialect_cast: impl Fn(&str, ColumnType) -> String,
) -> Vec<String> {
    std::iter::once(dialect_cast("id", ColumnType::Int))
        .chain(
            table
                .columns
                .iter()
                .map(|(name, ty)| dialect_cast(name, *ty)),
        )
        .collect()
}

fn local_rows(store: &Path, table: &ShippedTable) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let columns = row_text(table, |name, ty| match ty {
        ColumnType::Real => {
            format!("coalesce(CAST(CAST(round({name} * 1000) AS INTEGER) AS TEXT), '~')")
        }
        _ => format!("coalesce(CAST({name} AS TEXT), '~')"),
    })
    .join(" || '|' || ");
    let sql = format!("SELECT {columns} FROM {} ORDER BY id", table.name);
    let mut statement = conn.prepare(&sql).unwrap();
    statement
        // Shipped text carries U+FFFD for a NUL (PostgreSQL's text holds none).
        .query_map([], |row| {
            Ok(row.get::<_, String>(0)?.replace('\0', "\u{fffd}"))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn fleet_rows(pg: &Postgres, host: &str, table: &ShippedTable) -> Vec<String> {
    let columns = row_text(table, |name, ty| match ty {
        ColumnType::Real => format!("coalesce(round({name} * 1000)::bigint::text, '~')"),
        _ => format!("coalesce({name}::text, '~')"),
    })
    .join(", ");
    // One text value per row, rows separated by a character no log line holds.
    let sql = format!(
        "SELECT string_agg(concat_ws('|', {columns}), chr(30) ORDER BY id) FROM {} WHERE host = '{host}'",
        table.name
    );
    let out = pg.query(&sql);
    let out = out.strip_suffix('\n').unwrap_or(&out);
    match out.is_empty() {
        true => Vec::new(),
        false => out.split('\u{1e}').map(String::from).collect(),
    }
}

/// Every shipped table holds, for `host`, exactly the rows of the host's store: none missing,
/// none twice (the fleet's key is (host, id), and the counts must match too).
fn assert_same_records(mt: &Mailtrail, pg: &Postgres, host: &str) -> usize {
    let mut total = 0;
    for table in SHIPPED {
        let local = local_rows(&mt.store_path(), table);
        let fleet = fleet_rows(pg, host, table);
        let count: usize = pg
            .query(&format!(
                "SELECT count(*) FROM {} WHERE host = '{host}'",
                table.name
            ))
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            count,
            local.len(),
            "{}: rows in the fleet database",
            table.name
        );
        if local != fleet {
            let first = local.iter().zip(&fleet).position(|(a, b)| a != b);
            panic!(
                "{}: {} local rows, {} in the fleet database; first difference at {first:?}:\n  local {:?}\n  fleet {:?}",
                table.name,
                local.len(),
                fleet.len(),
                first.and_then(|i| local.get(i)),
                first.and_then(|i| fleet.get(i)),
            );
        }
        total += local.len();
    }
    total
}

/// Each host's statistics rollups are in the fleet database as in its store: sorted rows as
/// text (histograms in hex).
fn assert_same_rollups(mt: &Mailtrail, pg: &Postgres, host: &str) -> usize {
    let conn = rusqlite::Connection::open_with_flags(
        mt.store_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut total = 0;
    for table in ROLLUPS {
        let local_columns: Vec<String> = table
            .columns
            .iter()
            .map(|(name, ty)| match ty {
                ColumnType::Blob => format!("hex({name})"),
                _ => format!("CAST({name} AS TEXT)"),
            })
            .collect();
        let mut local: Vec<String> = conn
            .prepare(&format!(
                "SELECT {} FROM {}",
                local_columns.join(" || '|' || "),
                table.name
            ))
            .unwrap()
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        local.sort();
        let fleet_columns: Vec<String> = table
            .columns
            .iter()
            .map(|(name, ty)| match ty {
                ColumnType::Blob => format!("upper(encode({name}, 'hex'))"),
                _ => format!("{name}::text"),
            })
            .collect();
        let out = pg.query(&format!(
            "SELECT concat_ws('|', {}) FROM {} WHERE host = '{host}'",
            fleet_columns.join(", "),
            table.name
        ));
        let mut fleet: Vec<String> = out.lines().map(String::from).collect();
        fleet.sort();
        assert_eq!(local.len(), fleet.len(), "{}: rows", table.name);
        assert!(local == fleet, "{}: the rows differ", table.name);
        total += local.len();
    }
    total
}

fn wait_shipped(mt: &Mailtrail) {
    wait_for(
        T,
        "the fleet lag to reach 0",
        || {
            let c = mt.counters();
            (c.get("fleet_lag_records") == Some(&0)).then_some(())
        },
        || format!("{:?}\n{}", mt.counters(), mt.log()),
    );
}

fn wait_log_lines(mt: &Mailtrail, lines: u64) {
    mt.wait_counter("log_lines", lines, T);
}

#[test]
fn history_and_live_records_arrive_once_across_a_kill_9_mid_batch() {
    let pg = Postgres::start();
    let text = generated_log(60_000, 11);
    let (history, live) = split_at_fraction(&text, 0.8);
    let mut mt = fleet_daemon(&pg, "relay1");
    import(&mt, history);
    let local: usize = SHIPPED
        .iter()
        .map(|t| local_rows(&mt.store_path(), t).len())
        .sum();

    mt.start();
    // Killed as soon as the first batch is in: the history is many batches long.
    wait_until(
        T,
        "the first batch in the fleet database",
        || {
            pg.try_query("SELECT count(*) FROM message")
                .is_some_and(|n| n.trim() != "0")
        },
        || mt.log(),
    );
    mt.kill();
    let before_restart: usize = SHIPPED
        .iter()
        .map(|t| {
            pg.query(&format!("SELECT count(*) FROM {}", t.name))
                .trim()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert!(
        before_restart < local,
        "the kill came after everything was shipped ({before_restart} of {local}): it proves nothing"
    );

    mt.start();
    append(&mt.mta_log_path(), live);
    wait_log_lines(&mt, live.lines().count() as u64);
    // The statistics of the live lines too (the refresh runs at start, then every 5 minutes).
    mt.command(&["stats", "--period", "year"]);
    wait_shipped(&mt);
    let shipped = assert_same_records(&mt, &pg, "relay1");
    let rollups = assert_same_rollups(&mt, &pg, "relay1");
    assert!(
        rollups > 100,
        "the history's statistics shipped: {rollups} rows"
    );
    assert!(
        shipped > local,
        "live records shipped too ({shipped} vs {local} imported)"
    );
    let counters = mt.counters();
    assert_eq!(counters["fleet_lag_seconds"], 0, "{counters:?}");
    assert!(!mt.log().contains(TOKEN), "the token is never logged");
    let hosts = pg.query("SELECT name, url FROM fleet_host");
    assert!(hosts.starts_with("relay1|http://127.0.0.1:8025"), "{hosts}");
}

#[test]
fn records_written_while_the_database_is_down_arrive_once_when_it_returns() {
    let pg = Postgres::start();
    let text = generated_log(6_000, 12);
    let (before, during) = split_at_fraction(&text, 0.5);
    let (during, after) = split_at_fraction(during, 0.5);
    let mut mt = fleet_daemon(&pg, "relay2");
    mt.start();
    append(&mt.mta_log_path(), before);
    wait_log_lines(&mt, before.lines().count() as u64);
    wait_shipped(&mt);
    assert_same_records(&mt, &pg, "relay2");

    pg.down("immediate");
    append(&mt.mta_log_path(), during);
    // The mail path goes on: the follower records every line meanwhile.
    wait_log_lines(
        &mt,
        (before.lines().count() + during.lines().count()) as u64,
    );
    let counters = mt.wait_counter("fleet_errors", 1, T);
    assert!(counters["fleet_lag_records"] > 0, "{counters:?}");
    wait_until(
        T,
        "the outage in mailtrail's log",
        || {
            mt.log()
                .contains("records stay in the outbox and are retried")
        },
        || mt.log(),
    );
    std::thread::sleep(Duration::from_secs(30));
    let counters = mt.counters();
    assert!(counters["fleet_lag_seconds"] >= 25, "{counters:?}");

    // Statistics refreshed during the outage wait for the database too.
    mt.command(&["stats", "--period", "year"]);
    pg.up();
    append(&mt.mta_log_path(), after);
    wait_log_lines(&mt, text.lines().count() as u64);
    wait_shipped(&mt);
    assert_same_records(&mt, &pg, "relay2");
    assert!(assert_same_rollups(&mt, &pg, "relay2") > 0);
    wait_until(
        T,
        "the recovery in mailtrail's log",
        || mt.log().contains("answers again"),
        || mt.log(),
    );
}

#[test]
fn a_host_name_claimed_by_a_second_store_is_reported_not_merged() {
    let pg = Postgres::start();
    let text = generated_log(3_000, 13);
    let (first_log, second_log) = split_at_fraction(&text, 0.5);
    let mut first = fleet_daemon(&pg, "relay1");
    first.start();
    append(&first.mta_log_path(), first_log);
    wait_log_lines(&first, first_log.lines().count() as u64);
    wait_shipped(&first);

    let mut second = fleet_daemon(&pg, "relay1");
    second.start();
    append(&second.mta_log_path(), second_log);
    wait_log_lines(&second, second_log.lines().count() as u64);
    wait_until(
        T,
        "the second host to report the name taken",
        || {
            second
                .log()
                .contains("fleet host name `relay1` is claimed by another mailtrail")
        },
        || second.log(),
    );
    let counters = second.counters();
    assert!(
        counters["fleet_lag_records"] > 0,
        "nothing of the second host shipped: {counters:?}"
    );
    assert_same_records(&first, &pg, "relay1");
    // The schema's columns are the shipped ones, in order (one list makes both).
    for table in SHIPPED {
        let columns = pg.query(&format!(
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position)
            FROM information_schema.columns WHERE table_name = '{}'",
            table.name
        ));
        let expected: Vec<&str> = ["host", "id"]
            .into_iter()
            .chain(table.columns.iter().map(|(name, _)| *name))
            .collect();
        assert_eq!(columns.trim(), expected.join(","), "{}", table.name);
    }
    let conflicts = pg.query("SELECT count(*) FROM fleet_conflict WHERE name = 'relay1'");
    assert_eq!(conflicts.trim(), "1");
    second.stop();
    first.stop();
}

#[test]
fn a_database_it_cannot_use_is_logged_and_retried_and_mail_goes_on() {
    let pg = Postgres::start();
    // A newer mailtrail's schema: nothing is written into it.
    pg.query(
        "CREATE TABLE mailtrail_schema (version integer NOT NULL);
        INSERT INTO mailtrail_schema VALUES (999)",
    );
    let text = generated_log(2_000, 14);
    let mut mt = fleet_daemon(&pg, "relay3");
    mt.start();
    append(&mt.mta_log_path(), &text);
    wait_log_lines(&mt, text.lines().count() as u64);
    wait_until(
        T,
        "the schema refusal in the log",
        || {
            mt.log()
                .contains("fleet database schema version 999 is newer than this mailtrail")
        },
        || mt.log(),
    );
    assert!(mt.counters()["fleet_lag_records"] > 0);
    assert_eq!(
        pg.query("SELECT count(*) FROM pg_tables WHERE tablename = 'message'")
            .trim(),
        "0"
    );
    mt.stop();

    // Wrong credentials: the role does not exist.
    let mut wrong = Mailtrail::configure_with_web(&format!(
        "[web]\nenabled = false\n\n[fleet]\ndatabase = \"postgresql://nobody:{TOKEN}@127.0.0.1:{}/fleet\"\nhost = \"relay4\"\n",
        pg.port()
    ));
    wrong.start();
    append(&wrong.mta_log_path(), &text);
    wait_log_lines(&wrong, text.lines().count() as u64);
    wait_until(
        T,
        "the refused login in the log",
        || wrong.log().contains("role \"nobody\" does not exist"),
        || wrong.log(),
    );
    assert!(!wrong.log().contains(TOKEN), "the password is never logged");
    assert!(
        wrong
            .log()
            .contains(&format!("127.0.0.1:{}/fleet as nobody", pg.port()))
    );
}

/// The shipper's own steps, driven by hand: a batch committed in the fleet database but not
/// marked in the outbox (a crash in between) is sent again; so is a batch overlapping it, and
/// the whole history when a host joins again. Each row is stored once.
#[test]
fn batches_sent_again_are_stored_once() {
    use mailtrail::store::{
        Store,
        fleet::postgres::{HostClaim, Shipper, migrate},
    };
    let pg = Postgres::start();
    let text = generated_log(4_000, 15);
    let (first, second) = split_at_fraction(&text, 0.5);
    let mt = fleet_daemon(&pg, "relay5");
    let mut store = Store::open(&mt.store_path()).unwrap();
    store.set_fleet_outbox(true).unwrap();
    import(&mt, first);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let claim = HostClaim {
        host: "relay5",
        instance: "test-instance",
        url: "http://relay5.example:8025",
    };
    runtime.block_on(async {
        let (mut client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        migrate(&mut client).await.unwrap();
        let mut shipper = Shipper::default();

        // Half of the outbox, committed, never marked: sent again with the rest.
        let half = store.outbox_lag().unwrap().records as usize / 2;
        let batch = store.outbox_batch(half).unwrap();
        assert!(
            !batch.from_backfill,
            "imported with the outbox on: live entries"
        );
        shipper.ship(&mut client, &claim, &batch).await.unwrap();
        shipper.ship(&mut client, &claim, &batch).await.unwrap();
        let overlapping = store.outbox_batch(usize::MAX).unwrap();
        shipper
            .ship(&mut client, &claim, &overlapping)
            .await
            .unwrap();
        store.outbox_shipped(overlapping.last_seq.unwrap()).unwrap();
        assert_same_records(&mt, &pg, "relay5");

        // New rows after a full ship go by COPY (a log line with a NUL among them: PostgreSQL's
        // text holds none); then the host leaves and joins again.
        import(&mt, second);
        rusqlite::Connection::open(mt.store_path())
            .unwrap()
            .execute(
                "INSERT INTO raw_line (at, queue_id, line) VALUES (strftime('%s', 'now'), NULL, ?1)",
                ["damaged\0line"],
            )
            .unwrap();
        let batch = store.outbox_batch(usize::MAX).unwrap();
        shipper.ship(&mut client, &claim, &batch).await.unwrap();
        store.outbox_shipped(batch.last_seq.unwrap()).unwrap();
        assert_same_records(&mt, &pg, "relay5");
        store.set_fleet_outbox(false).unwrap();
        store.set_fleet_outbox(true).unwrap();
        let again = store.outbox_batch(usize::MAX).unwrap();
        assert!(again.from_backfill);
        assert!(again.first_seq > batch.last_seq, "positions never go back");
        shipper.ship(&mut client, &claim, &again).await.unwrap();
        store.outbox_shipped(again.last_seq.unwrap()).unwrap();
    });
    let nul = pg.query("SELECT line FROM raw_line WHERE host = 'relay5' AND line LIKE 'damaged%'");
    assert_eq!(nul.trim(), "damaged\u{fffd}line");
    assert_eq!(store.outbox_lag().unwrap().records, 0);
}

#[test]
fn a_store_keeps_the_host_name_it_shipped_under() {
    let pg = Postgres::start();
    let text = generated_log(1_000, 17);
    let mut mt = fleet_daemon(&pg, "relay8");
    mt.start();
    append(&mt.mta_log_path(), &text);
    wait_log_lines(&mt, text.lines().count() as u64);
    wait_shipped(&mt);
    mt.stop();
    let config = std::fs::read_to_string(mt.config_path()).unwrap();
    std::fs::write(mt.config_path(), config.replace("relay8", "relay9")).unwrap();
    mt.start();
    wait_until(
        T,
        "the renamed host refused",
        || {
            mt.log().contains(
                "this store shipped to the fleet as `relay8`, and [fleet] host is now `relay9`",
            )
        },
        || mt.log(),
    );
    assert_eq!(
        pg.query("SELECT string_agg(name, ',') FROM fleet_host")
            .trim(),
        "relay8"
    );
}

/// `sslmode=require` against a server with a certificate of an internal CA: refused (and said
/// so) until `[fleet] ca` names that CA, then shipped over TLS.
#[test]
fn the_database_over_tls_trusts_the_configured_ca() {
    use std::os::unix::fs::PermissionsExt;
    let files = tempfile::Builder::new()
        .prefix("mailtrail-pg-tls.")
        .tempdir()
        .unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = files.path().join("server.pem");
    let key = files.path().join("server.key");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    for path in [files.path(), &cert, &key] {
        let chown = Command::new("chown").arg("postgres").arg(path).status();
        assert!(chown.unwrap().success());
    }
    let pg = Postgres::start_with(&format!(
        "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        cert.display(),
        key.display()
    ));
    let text = generated_log(1_000, 16);
    let daemon = |ca: &str| {
        Mailtrail::configure_with_web(&format!(
            "[web]\nenabled = false\n\n[fleet]\ndatabase = \"{}?sslmode=require\"\nhost = \"relay7\"\n{ca}",
            pg.url()
        ))
    };

    let mut untrusted = daemon("");
    untrusted.start();
    append(&untrusted.mta_log_path(), &text);
    wait_log_lines(&untrusted, text.lines().count() as u64);
    wait_until(
        T,
        "the refused certificate in the log",
        || {
            untrusted.log().contains("records stay in the outbox")
                && untrusted.log().contains("ertificate")
        },
        || untrusted.log(),
    );
    assert!(untrusted.counters()["fleet_lag_records"] > 0);
    untrusted.stop();

    let mut trusted = daemon(&format!("ca = \"{}\"\n", cert.display()));
    trusted.start();
    append(&trusted.mta_log_path(), &text);
    wait_log_lines(&trusted, text.lines().count() as u64);
    wait_shipped(&trusted);
    assert!(assert_same_records(&trusted, &pg, "relay7") > 0);
    let encrypted = pg.query(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = 'mailtrail relay7' AND s.ssl",
    );
    assert_eq!(encrypted.trim(), "1", "the shipper's connection uses TLS");
}

/// The fleet database keeps a host's raw lines as long as that host does: at its own
/// `raw_retention`, its day partitions past it are dropped whole, and another host's lines of
/// the same days stay.
#[test]
fn each_hosts_raw_lines_expire_at_its_own_retention() {
    let pg = Postgres::start();
    let text = generated_postfix_log(6_000, 23, 5, 250);
    let mut hosts = [
        fleet_daemon(&pg, "relay-short"),
        fleet_daemon(&pg, "relay-long"),
    ];
    for mt in &mut hosts {
        import(mt, &text);
        mt.start();
    }
    for mt in &hosts {
        wait_shipped(mt);
    }
    // Whole UTC days before this are past a 2-day retention.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cut = (now - 2 * 86_400).div_euclid(86_400) * 86_400;
    let old_lines = |host: &str| -> u64 {
        pg.query(&format!(
            "SELECT count(*) FROM raw_line WHERE host = '{host}' AND at < {cut}"
        ))
        .trim()
        .parse()
        .unwrap()
    };
    let partitions = |host: &str| -> u64 {
        pg.query(&format!(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                JOIN pg_class p ON p.oid = i.inhparent JOIN fleet_host h ON h.name = '{host}'
            WHERE p.relname = 'raw_line_h' || h.number"
        ))
        .trim()
        .parse()
        .unwrap()
    };
    let (short_old, long_old) = (old_lines("relay-short"), old_lines("relay-long"));
    assert!(short_old > 0, "the history's old days shipped");
    assert_eq!(short_old, long_old);
    let long_partitions = partitions("relay-long");
    assert!(
        long_partitions >= 5,
        "one partition a day: {long_partitions}"
    );

    let short = &mut hosts[0];
    short.stop();
    let config = std::fs::read_to_string(short.config_path()).unwrap();
    std::fs::write(
        short.config_path(),
        config.replace(
            "poll_interval = \"100ms\"\n",
            "poll_interval = \"100ms\"\nraw_retention = \"2d\"\n",
        ),
    )
    .unwrap();
    short.start();
    wait_until(
        T,
        "relay-short's old days dropped",
        || short.log().contains("past retention dropped"),
        || short.log(),
    );
    assert_eq!(old_lines("relay-short"), 0);
    assert!(partitions("relay-short") < long_partitions);
    assert!(
        pg.query("SELECT count(*) FROM raw_line WHERE host = 'relay-short'")
            .trim()
            != "0",
        "the days within retention stay"
    );
    assert_eq!(
        old_lines("relay-long"),
        long_old,
        "another host's days stay"
    );
    assert_eq!(partitions("relay-long"), long_partitions);
}

/// A fleet database of schema 5, whose raw lines were partitioned by day alone, is brought up
/// to date by the first host that connects: every line moves to its host's partitions, and
/// shipping goes on beside them.
#[test]
fn an_older_fleet_schema_moves_raw_lines_to_their_hosts_partitions() {
    use mailtrail::store::fleet::postgres::MIGRATIONS;
    let raw_line = SHIPPED.iter().find(|t| t.name == "raw_line").unwrap();
    let pg = Postgres::start();
    let day = 1_796_083_200; // 2026-12-01, UTC
    pg.query(&format!(
        "{};
        CREATE TABLE mailtrail_schema (version integer NOT NULL);
        INSERT INTO mailtrail_schema VALUES (5);
        INSERT INTO fleet_host (name, instance, url) VALUES ('old-relay', 'x', 'http://127.0.0.1:1');
        CREATE TABLE raw_line_d20261201 PARTITION OF raw_line
            FOR VALUES FROM ({day}) TO ({});
        INSERT INTO raw_line VALUES ('old-relay', 1, {}, 'A1', 'first line'),
            ('old-relay', 2, {}, NULL, 'second line');",
        MIGRATIONS[..5].join(";\n"),
        day + 86_400,
        day + 60,
        day + 3_600,
    ));
    let text = generated_log(500, 29);
    let mut mt = fleet_daemon(&pg, "relay-new");
    import(&mt, &text);
    mt.start();
    wait_shipped(&mt);
    assert_eq!(
        pg.query("SELECT version FROM mailtrail_schema").trim(),
        MIGRATIONS.len().to_string()
    );
    assert_eq!(
        pg.query(
            "SELECT string_agg(id || ':' || line || ':' || tableoid::regclass::text, ',' ORDER BY id)
            FROM raw_line WHERE host = 'old-relay'"
        )
        .trim(),
        "1:first line:raw_line_h1_d20261201,2:second line:raw_line_h1_d20261201"
    );
    assert_eq!(
        pg.query(
            "SELECT count(*) FROM raw_line WHERE host = 'relay-new'
                AND tableoid::regclass::text NOT LIKE 'raw_line_h2_d%'"
        )
        .trim(),
        "0"
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM raw_line WHERE host = 'relay-new'")
            .trim(),
        local_rows(&mt.store_path(), raw_line).len().to_string(),
    );
}

fn suppressing_daemon(pg: &Postgres, host: &str) -> Mailtrail {
    Mailtrail::configure_with_web(&format!(
        "[web]\nenabled = false\n\n[suppression]\nmode = \"refuse\"\n\n[fleet]\ndatabase = \"{}\"\nhost = \"{host}\"\ntoken = \"{TOKEN}\"\n",
        pg.url()
    ))
}

fn suppressed(mt: &Mailtrail) -> Vec<serde_json::Value> {
    let list: serde_json::Value =
        serde_json::from_str(&mt.command(&["suppress", "list", "--json"])).unwrap();
    list.as_array().unwrap().clone()
}

/// The suppression list goes through the fleet database: an entry added on one relay holds on
/// the other within seconds, and the other's removal reaches the first.
#[test]
fn a_suppression_on_one_relay_holds_on_every_relay() {
    let pg = Postgres::start();
    let mut a = suppressing_daemon(&pg, "relay-a");
    let mut b = suppressing_daemon(&pg, "relay-b");
    a.start();
    b.start();
    a.command(&[
        "suppress",
        "add",
        "Gone@X.example",
        "--domain",
        "shop.example",
        "--reason",
        "asked to stop",
    ]);
    let on_b = wait_for(
        T,
        "relay-a's entry on relay-b",
        || {
            let list = suppressed(&b);
            (!list.is_empty()).then_some(list)
        },
        || format!("{}\n{}", a.log(), b.log()),
    );
    assert_eq!(on_b.len(), 1);
    assert_eq!(on_b[0]["address"], "gone@x.example");
    assert_eq!(on_b[0]["sender_domain"], "shop.example");
    assert_eq!(on_b[0]["reason"], "asked to stop");
    assert_eq!(on_b[0]["source"], "manual");

    b.command(&[
        "suppress",
        "remove",
        "gone@x.example",
        "--domain",
        "shop.example",
    ]);
    wait_until(
        T,
        "relay-b's removal on relay-a",
        || suppressed(&a).is_empty(),
        || format!("{}\n{}", a.log(), b.log()),
    );
    assert_eq!(
        pg.query("SELECT host || '|' || (removed_at IS NOT NULL)::text FROM suppression")
            .trim(),
        "relay-b|true"
    );
    // Neither relay sends back what it took: the row stays relay-b's removal.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        pg.query("SELECT host FROM suppression").trim(),
        "relay-b",
        "{}",
        a.log()
    );
}
