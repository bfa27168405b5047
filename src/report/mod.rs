//! Report stage: flow records in Elastic Common Schema names, and the run summary.

pub mod clickhouse;
pub mod flows_csv;
pub mod html;
pub mod ingest;
pub mod inventory;
pub mod json;
pub mod record;
pub mod rtt;
pub mod schema;
pub mod summary;
