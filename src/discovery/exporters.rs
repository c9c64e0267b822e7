//! DCGM exporters infmon did not deploy: the known ways one gets onto GPU nodes, as data.
//! When any runs, infmon deploys none (two exporters on one node double every GPU series and
//! fight over the exclusive profiling counters).

/// A kind of DCGM exporter infmon recognises by its pods' labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownExporter {
    /// Who deploys it, for messages.
    pub origin: &'static str,
    /// Label selector of its pods.
    pub selector: &'static str,
}

/// Every known exporter, looked for in this order.
pub const KNOWN_EXPORTERS: [KnownExporter; 3] = [
    KnownExporter {
        origin: "the NVIDIA GPU Operator",
        selector: "app=nvidia-dcgm-exporter",
    },
    KnownExporter {
        origin: "the dcgm-exporter Helm chart",
        selector: "app.kubernetes.io/name=dcgm-exporter",
    },
    KnownExporter {
        origin: "GKE's managed GPU monitoring",
        selector: "app.kubernetes.io/name=gke-managed-dcgm-exporter",
    },
];

/// An exporter found running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundExporter {
    /// Which kind.
    pub kind: KnownExporter,
    /// Namespace of the first pod found.
    pub namespace: String,
}

impl std::fmt::Display for FoundExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the DCGM exporter of {} (pods labelled {} in namespace {})",
            self.kind.origin, self.kind.selector, self.namespace
        )
    }
}
