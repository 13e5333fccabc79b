//! Shipping to the fleet database against PostgreSQL's own `COPY` of the same rows.
//!
//! `cargo bench --bench fleet` (as root, with Debian's `postgresql` package): imports the
//! generated 1,000,000-line postfix log with `mailtrail import` into a fresh store of a host in
//! the fleet (its outbox on), starts a
//! private PostgreSQL server (fsync on) with two databases migrated to the fleet schema, then
//! - **COPY** (the limit): every row of the shipped tables, read from the store beforehand, sent
//!   with `COPY ... FROM STDIN (FORMAT binary)` into the first database;
//! - **shipping**: what `mailtrail run` does with `[fleet]`: the outbox read in batches, sent
//!   (rows never updated by `COPY`, the others by upsert) and marked shipped, into the second.
//!
//! Prints rows/s of each and their ratio (goal: shipping ≥ 50% of COPY).

#[path = "common/mod.rs"]
mod common;
#[path = "common/postgres.rs"]
mod postgres;

use mailtrail::store::{
    Store,
    fleet::{
        BATCH, OutboxBatch,
        postgres::{HostClaim, Shipper, copy_in, migrate},
    },
};
use std::time::Instant;

/// Every row of `batch` with `COPY ... FROM STDIN (FORMAT binary)`, in one transaction.
async fn copy_rows(client: &mut tokio_postgres::Client, host: &str, batch: &OutboxBatch) -> usize {
    let tx = client.transaction().await.expect("begin");
    for rows in &batch.tables {
        copy_in(&tx, host, rows).await.expect("COPY");
    }
    tx.commit().await.expect("commit");
    batch.rows()
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("fleet: run with `cargo bench --bench fleet`");
        return;
    }
    let log = common::generated_postfix_log();
    let dir = common::target_dir().join("fleet-bench");
    let store_path = postgres::fleet_host_store(&dir, &log);

    let mut store = Store::open(&store_path).unwrap();
    let everything = store.outbox_batch(usize::MAX).unwrap();
    println!(
        "{} rows in the outbox ({})",
        everything.rows(),
        everything
            .tables
            .iter()
            .map(|t| format!("{} {}", t.table.name, t.ids.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let pg_dir = dir.join("pg");
    let port = 25_432;
    let server = postgres::Server::start(&pg_dir, port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (copy_secs, copied, ship_secs, shipped) = runtime.block_on(async {
        let admin = server.connect("postgres").await;
        for database in ["copy", "fleet"] {
            admin.batch_execute(&format!("CREATE DATABASE {database}")).await.unwrap();
        }
        let mut copy_db = server.connect("copy").await;
        migrate(&mut copy_db).await.unwrap();
        copy_db
            .batch_execute("CREATE TABLE raw_line_all PARTITION OF raw_line DEFAULT")
            .await
            .unwrap();
        let mut fleet_db = server.connect("fleet").await;
        migrate(&mut fleet_db).await.unwrap();

        let started = Instant::now();
        let copied = copy_rows(&mut copy_db, "relay1", &everything).await;
        let copy_secs = started.elapsed().as_secs_f64();
        drop(everything);

        let started = Instant::now();
        let mut shipper = Shipper::default();
        let claim = HostClaim {
            host: "relay1",
            instance: "bench",
            url: "http://127.0.0.1:8025",
        };
        let mut shipped = 0;
        // Where the time goes: the store's outbox reads, PostgreSQL, the outbox marks.
        let (mut reading, mut writing, mut marking) = (0f64, 0f64, 0f64);
        loop {
            let at = Instant::now();
            let batch = store.outbox_batch(BATCH).unwrap();
            reading += at.elapsed().as_secs_f64();
            let Some(last) = batch.last_seq else { break };
            let at = Instant::now();
            shipper.ship(&mut fleet_db, &claim, &batch).await.unwrap();
            writing += at.elapsed().as_secs_f64();
            let at = Instant::now();
            store.outbox_shipped(last).unwrap();
            marking += at.elapsed().as_secs_f64();
            shipped += batch.rows();
        }
        println!(
            "shipping: {reading:.2} s reading the outbox, {writing:.2} s in PostgreSQL, {marking:.2} s marking"
        );
        (copy_secs, copied, started.elapsed().as_secs_f64(), shipped)
    });
    drop(server);
    assert_eq!(copied, shipped, "both sent every row");
    let copy_rate = copied as f64 / copy_secs;
    let ship_rate = shipped as f64 / ship_secs;
    println!(
        "COPY (binary, rows in memory)    {copied} rows in {copy_secs:.2} s = {copy_rate:.0} rows/s"
    );
    println!(
        "shipping (outbox → COPY|upsert) {shipped} rows in {ship_secs:.2} s = {ship_rate:.0} rows/s"
    );
    println!("shipping / COPY: {:.2}", ship_rate / copy_rate);
}
