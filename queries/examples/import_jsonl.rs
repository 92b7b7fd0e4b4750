//! Appends a JSON Lines file of contract-v1 events to a data directory as one Parquet segment:
//! `cargo run -p vigil-queries --example import_jsonl -- events.jsonl DATA`.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, dir] = args.as_slice() else {
        anyhow::bail!("usage: import_jsonl EVENTS.jsonl DATA_DIR");
    };
    let text = std::fs::read_to_string(file)?;
    let batch = vigil_queries::load::events_from_jsonl(&text)?;
    let data = vigil_queries::DataDir::new(dir);
    let store = vigil_queries::SegmentStore::open("events", data.events(), vigil_engine::schema::event_schema(), "ts")?;
    store.append(batch)?;
    if let Some(seg) = store.flush_segment()? {
        println!("{}: {} events", seg.path.display(), seg.rows);
    }
    Ok(())
}
