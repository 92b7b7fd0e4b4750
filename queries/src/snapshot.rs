//! A table whose rows come from a snapshot function, called once per query scan.
//!
//! The `health` table is one: the caller passes a closure returning the scoring core's current
//! state as one [`RecordBatch`] (one row per account), taken under whatever lock the core uses,
//! so every scan of a query sees one consistent snapshot and this crate never touches the lock.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

/// Returns the current snapshot; the batch must have the table's schema.
pub type SnapshotFn = Arc<dyn Fn() -> Result<RecordBatch> + Send + Sync>;

/// A table over a snapshot function.
pub struct SnapshotTable {
    schema: SchemaRef,
    snapshot: SnapshotFn,
}

impl std::fmt::Debug for SnapshotTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotTable").field("schema", &self.schema).finish()
    }
}

impl SnapshotTable {
    /// A table of `schema` whose rows are whatever `snapshot` returns at scan time.
    pub fn new(schema: SchemaRef, snapshot: SnapshotFn) -> Self {
        SnapshotTable { schema, snapshot }
    }

    /// A table that always returns this batch.
    pub fn fixed(batch: RecordBatch) -> Self {
        let schema = batch.schema();
        SnapshotTable {
            schema,
            snapshot: Arc::new(move || Ok(batch.clone())),
        }
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = (self.snapshot)()?;
        if batch.schema().fields() != self.schema.fields() {
            return Err(DataFusionError::Execution(format!(
                "snapshot has schema {:?}, table has {:?}",
                batch.schema().fields(),
                self.schema.fields()
            )));
        }
        let batch = batch.with_schema(self.schema.clone())?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
