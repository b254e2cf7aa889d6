//! ONNX Runtime (through `ort`) as an [`Executor`]. Each state tensor has two buffers; a run
//! reads one and writes the other through IoBinding, then the roles swap, so state never
//! leaves the runtime (device memory on CUDA).

use super::cuda::{self, CudaProblem, CudaUnavailable};
use super::fused;
use super::{Device, Executor, GraphHandle, NEXT, RResult, RuntimeError, check_len};
use crate::graph::{Graph, onnx};
use crate::optim::Fusion;
use ::ort::{
    environment::Environment,
    ep,
    memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType},
    session::{IoBinding, Session, builder::GraphOptimizationLevel},
    value::Tensor,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

fn oerr(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Ort(e.to_string())
}

/// Where `cargo xtask setup` puts the library, in the workspace found at run time.
pub fn default_library_path() -> RResult<PathBuf> {
    use checkpoint::workspace::{ONNX_RUNTIME_DIR, ONNX_RUNTIME_LIBRARY, root};
    root("the ONNX Runtime library (or set ORT_DYLIB_PATH)")
        .map(|root| root.join(ONNX_RUNTIME_DIR).join(ONNX_RUNTIME_LIBRARY))
        .map_err(|e| RuntimeError::NoWorkspace(e.to_string()))
}

/// The ONNX Runtime this process loaded (once: the library cannot be swapped afterwards).
struct Runtime {
    env: Environment,
    path: PathBuf,
    origin: Origin,
    /// Whether sessions can use CUDA, decided on the first CUDA request.
    cuda: OnceLock<Result<(), CudaUnavailable>>,
}

/// Which library was loaded, and why.
enum Origin {
    /// The one `ORT_DYLIB_PATH` names.
    Override,
    /// The CPU library of `cargo xtask setup`; with why CUDA was not prepared, when it was
    /// asked for.
    Cpu(Option<CudaUnavailable>),
    /// The CUDA build of `cargo xtask setup --cuda`, its NVIDIA libraries preloaded.
    Cuda,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime once per process from `ORT_DYLIB_PATH` or [`default_library_path`]
/// (the CPU library), unless an executor has already loaded the CUDA build.
pub fn ort_environment() -> RResult<&'static Environment> {
    runtime(Device::Cpu).map(|rt| &rt.env)
}

/// The process's ONNX Runtime, loaded on first use: `ORT_DYLIB_PATH` when set; otherwise, for
/// a CUDA request whose driver and set-up are in place, the CUDA build (its dependencies
/// preloaded), else the CPU library.
fn runtime(device: Device) -> RResult<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let (path, origin) = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) => (PathBuf::from(path), Origin::Override),
        None if device.wants_cuda() => match cuda::prepare() {
            Ok(set) => (set.onnxruntime(), Origin::Cuda),
            // Said before the CPU library loads, so that its own failure cannot hide this.
            Err(why) => {
                fall_back(device, &why)?;
                (default_library_path()?, Origin::Cpu(Some(why)))
            }
        },
        None => (default_library_path()?, Origin::Cpu(None)),
    };
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(RuntimeError::LibraryMissing { path: shown });
    }
    let builder = ::ort::init_from(&path).map_err(|e| RuntimeError::LibraryLoad {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let env = builder
        .with_name("mcugan")
        .build()
        .map_err(|e| RuntimeError::LibraryLoad {
            path: shown,
            reason: e.to_string(),
        })?;
    Ok(RUNTIME.get_or_init(|| Runtime {
        env,
        path,
        origin,
        cuda: OnceLock::new(),
    }))
}

/// For `cuda!`, the refusal; for `cuda`, the warning (once per process) and the CPU.
fn fall_back(device: Device, why: &CudaUnavailable) -> RResult<()> {
    if device == Device::CudaOnly {
        return Err(RuntimeError::Cuda(why.clone()));
    }
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::SeqCst) {
        eprintln!(
            "warning: CUDA is not available, running on the CPU instead (`--device cuda!` \
             refuses instead of falling back):{}",
            why.list()
        );
    }
    Ok(())
}

impl Runtime {
    /// Whether this library can run sessions on CUDA; found out once, by registering the
    /// CUDA provider on a session builder.
    fn cuda(&self) -> &Result<(), CudaUnavailable> {
        self.cuda.get_or_init(|| {
            let shown = self.path.display().to_string();
            match &self.origin {
                Origin::Cpu(Some(why)) => return Err(why.clone()),
                Origin::Cpu(None) => {
                    return Err(CudaProblem::CpuLibraryLoaded { path: shown }.into());
                }
                Origin::Override => cuda::probe_driver().map(|_| ())?,
                Origin::Cuda => {}
            }
            let registered = Session::builder(&self.env)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    b.with_execution_providers([ep::CUDA::default().build().error_on_failure()])
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                });
            registered.map_err(|reason| {
                // ONNX Runtime's words for a library built without the provider.
                if matches!(self.origin, Origin::Override)
                    && reason.contains("not enabled in this build")
                {
                    CudaProblem::NotCudaBuild {
                        path: shown,
                        reason,
                    }
                } else {
                    CudaProblem::Provider(reason)
                }
                .into()
            })
        })
    }
}

struct Slot {
    bufs: [Tensor<f32>; 2],
    cur: usize,
    shape: Vec<usize>,
}

struct OrtGraph {
    name: String,
    session: Session,
    inputs: Vec<(String, Vec<usize>)>,
    outputs: Vec<String>,
    feeds: HashMap<String, Tensor<f32>>,
    /// One binding per combination of the state inputs' and outputs' current buffers.
    bindings: HashMap<Vec<usize>, IoBinding>,
}

/// ONNX Runtime sessions sharing one set of double-buffered state tensors.
pub struct OrtExecutor {
    device: Device,
    threads: usize,
    fusion: Fusion,
    graphs: Vec<OrtGraph>,
    state: HashMap<String, Slot>,
}

fn cpu_tensor(shape: &[usize], data: &[f32]) -> RResult<Tensor<f32>> {
    let mut t = Tensor::<f32>::new(&Allocator::default(), shape.to_vec()).map_err(oerr)?;
    t.extract_tensor_mut().1.copy_from_slice(data);
    Ok(t)
}

impl OrtExecutor {
    /// An executor on `device`. [`Device::Cuda`] that cannot be used falls back to the CPU
    /// with one message on stderr per process, [`Device::CudaOnly`] fails with the reasons;
    /// [`OrtExecutor::device`] tells which one is used.
    pub fn new(device: Device) -> RResult<Self> {
        let rt = runtime(device)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let device = match device {
            Device::Cpu => Device::Cpu,
            Device::Cuda | Device::CudaOnly => match rt.cuda() {
                Ok(()) => Device::Cuda,
                Err(why) => {
                    fall_back(device, why)?;
                    Device::Cpu
                }
            },
        };
        // The fused kernels are CPU code: on CUDA they would copy every tensor to the host.
        let fusion = match device {
            Device::Cpu => Fusion::Fused,
            _ => Fusion::Standard,
        };
        Ok(OrtExecutor {
            device,
            threads,
            fusion,
            graphs: Vec::new(),
            state: HashMap::new(),
        })
    }

    /// The device the sessions actually run on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Graphs loaded from now on get this form of the optimizer and BatchNorm (for benchmarks
    /// and tests that compare the forms); fused forms stay CPU-only.
    pub fn with_fusion(mut self, fusion: Fusion) -> Self {
        if self.device == Device::Cpu {
            self.fusion = fusion;
        }
        self
    }

    fn session(&self, bytes: &[u8]) -> RResult<Session> {
        let env = ort_environment()?;
        // No spin-waiting between ops: on a 2-core machine shared with other work, spinning
        // threads starve the busy ones (a seed step measured 326 ms with it, 125 ms without,
        // under load).
        let mut b = Session::builder(env)
            .map_err(oerr)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(oerr)?
            .with_intra_threads(self.threads)
            .map_err(oerr)?
            .with_intra_op_spinning(false)
            .map_err(oerr)?;
        // Diagnostics: MCUGAN_ORT_PROFILE=<prefix> writes ONNX Runtime's per-op JSON profile.
        if let Some(p) = std::env::var_os("MCUGAN_ORT_PROFILE") {
            b = b.with_profiling(p).map_err(oerr)?;
        }
        if self.fusion != Fusion::Standard {
            b = b
                .with_operators(fused::domain().map_err(oerr)?)
                .map_err(oerr)?;
        }
        if self.device == Device::Cuda {
            b = b
                .with_execution_providers([ep::CUDA::default().build().error_on_failure()])
                .map_err(oerr)?;
        }
        b.commit_from_memory(bytes).map_err(oerr)
    }

    fn to_device(&self, t: Tensor<f32>) -> RResult<Tensor<f32>> {
        match self.device {
            Device::Cpu => Ok(t),
            // (`CudaOnly` is only asked for; `new` stores `Cuda`.)
            Device::Cuda | Device::CudaOnly => t.to(AllocationDevice::CUDA, 0).map_err(oerr),
        }
    }

    /// Which buffer each state input and output of graph `gi` uses now.
    fn binding_key(&self, gi: usize) -> RResult<Vec<usize>> {
        let g = &self.graphs[gi];
        let mut key = Vec::new();
        for (name, _) in &g.inputs {
            if g.feeds.contains_key(name) {
                continue;
            }
            let s = self
                .state
                .get(name)
                .ok_or_else(|| RuntimeError::MissingInput {
                    graph: g.name.clone(),
                    input: name.clone(),
                })?;
            key.push(s.cur);
        }
        for out in &g.outputs {
            if let Some(st) = out.strip_prefix(NEXT) {
                let s = self
                    .state
                    .get(st)
                    .ok_or_else(|| RuntimeError::UnknownState(st.into()))?;
                key.push(s.cur);
            }
        }
        Ok(key)
    }

    /// Creates (once per buffer combination) the binding of graph `gi`'s state and outputs.
    fn ensure_binding(&mut self, gi: usize) -> RResult<Vec<usize>> {
        let key = self.binding_key(gi)?;
        if self.graphs[gi].bindings.contains_key(&key) {
            return Ok(key);
        }
        let Self { graphs, state, .. } = self;
        let g = &graphs[gi];
        let mut b = g.session.create_binding().map_err(oerr)?;
        for (name, _) in &g.inputs {
            if let Some(s) = state.get(name)
                && !g.feeds.contains_key(name)
            {
                b.bind_input(name.as_str(), &s.bufs[s.cur]).map_err(oerr)?;
            }
        }
        let cpu = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )
        .map_err(oerr)?;
        for out in &g.outputs {
            match out.strip_prefix(NEXT).and_then(|st| state.get_mut(st)) {
                Some(s) => {
                    let other = 1 - s.cur;
                    b.bind_output(out.as_str(), &mut s.bufs[other])
                        .map_err(oerr)?
                }
                None => b.bind_output_to_device(out.as_str(), &cpu).map_err(oerr)?,
            }
        }
        graphs[gi].bindings.insert(key.clone(), b);
        Ok(key)
    }
}

impl Executor for OrtExecutor {
    fn load(&mut self, graph: &Graph, name: &str) -> RResult<GraphHandle> {
        let bytes = onnx::to_bytes(graph, name);
        let session = self.session(&bytes)?;
        let inputs: Vec<(String, Vec<usize>)> = graph
            .inputs()
            .into_iter()
            .map(|(n, s)| (n, s.iter().map(|&d| d.max(0) as usize).collect()))
            .collect();
        self.graphs.push(OrtGraph {
            name: name.into(),
            session,
            inputs,
            outputs: graph.outputs.iter().map(|(n, _)| n.clone()).collect(),
            feeds: HashMap::new(),
            bindings: HashMap::new(),
        });
        Ok(GraphHandle(self.graphs.len() - 1))
    }

    fn set_state(&mut self, name: &str, shape: &[usize], data: &[f32]) -> RResult<()> {
        check_len(name, shape, data.len())?;
        let a = self.to_device(cpu_tensor(shape, data)?)?;
        let b = self.to_device(cpu_tensor(shape, data)?)?;
        self.state.insert(
            name.into(),
            Slot {
                bufs: [a, b],
                cur: 0,
                shape: shape.to_vec(),
            },
        );
        // Bindings hold the old buffers: rebuild them on the next run.
        for g in &mut self.graphs {
            g.bindings.clear();
        }
        Ok(())
    }

    fn state(&self, name: &str) -> RResult<(Vec<usize>, Vec<f32>)> {
        let s = self
            .state
            .get(name)
            .ok_or_else(|| RuntimeError::UnknownState(name.into()))?;
        let t = &s.bufs[s.cur];
        let data = match self.device {
            Device::Cpu => t.extract_tensor().1.to_vec(),
            Device::Cuda | Device::CudaOnly => {
                let host = t.to(AllocationDevice::CPU, 0).map_err(oerr)?;
                host.extract_tensor().1.to_vec()
            }
        };
        Ok((s.shape.clone(), data))
    }

    fn run(
        &mut self,
        graph: GraphHandle,
        feeds: &[(&str, &[f32])],
        fetch: &[&str],
    ) -> RResult<Vec<Vec<f32>>> {
        let gi = graph.0;
        // Copy the feeds into this graph's own input tensors (allocated on first use).
        for (name, data) in feeds {
            let g = &mut self.graphs[gi];
            let Some((_, shape)) = g.inputs.iter().find(|(n, _)| n == name) else {
                return Err(RuntimeError::Usage(format!(
                    "graph `{}` has no input `{name}`",
                    g.name
                )));
            };
            check_len(name, shape, data.len())?;
            if !g.feeds.contains_key(*name) {
                let t = cpu_tensor(shape, data)?;
                g.feeds.insert(name.to_string(), t);
                g.bindings.clear();
            } else if let Some(t) = g.feeds.get_mut(*name) {
                t.extract_tensor_mut().1.copy_from_slice(data);
            }
        }
        let key = self.ensure_binding(gi)?;
        let g = &mut self.graphs[gi];
        let b = g.bindings.get_mut(&key).expect("created by ensure_binding");
        // Bind the feeds on every call: on CUDA binding is what copies them to the device.
        for (name, t) in &g.feeds {
            b.bind_input(name.as_str(), t).map_err(oerr)?;
        }
        let outs = g.session.run_binding(b).map_err(oerr)?;
        let mut result = Vec::with_capacity(fetch.len());
        for f in fetch {
            let v = outs
                .get(*f)
                .ok_or_else(|| RuntimeError::Usage(format!("graph has no output `{f}`")))?;
            let (_, data) = v.try_extract_tensor::<f32>().map_err(oerr)?;
            result.push(data.to_vec());
        }
        drop(outs);
        let outputs = self.graphs[gi].outputs.clone();
        for out in &outputs {
            if let Some(st) = out.strip_prefix(NEXT)
                && let Some(s) = self.state.get_mut(st)
            {
                s.cur = 1 - s.cur;
            }
        }
        Ok(result)
    }

    fn describe(&self) -> String {
        format!("ONNX Runtime ({}, {} threads)", self.device, self.threads)
    }

    fn fusion(&self) -> Fusion {
        self.fusion
    }
}
