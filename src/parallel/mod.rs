//! Synchronous data-parallel training across processes or threads: the paper's models were trained with
//! synchronous updates on many GPUs (arXiv 1606.05328, Section 3). Each of N ranks holds the
//! same model; every global batch of B images is split into N disjoint shards of B/N; each rank
//! computes the gradient of the mean loss over its shard, the gradients are summed across the
//! ranks in one all-reduce of one fused buffer and divided by N — the gradient of the mean loss
//! over the whole batch — and every rank applies the same optimiser step, so the weights stay
//! identical. Up to the order of floating-point sums this is the training of one process with
//! batch B: the same batches, the same binarisation draws, the same steps.
//!
//! [`Collective`] is what training needs from the ranks; [`Single`] is the one process of a
//! plain run; [`in_threads`] runs ranks as threads of one process, the shards of `train
//! --shards`; [`forward_in_shards`] computes a batch's logits in such shards; and with the
//! cargo feature `mpi`, [`from_environment`] joins the ranks of an `mpirun` launch (or of
//! another MPI launcher's) through MPI.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::model::PixelCnn;
use crate::run_config::MAX_SHARDS;

/// What synchronous data-parallel training needs from its ranks.
pub trait Collective {
    /// This rank, `0..ranks()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn ranks(&self) -> usize;
    /// What the ranks are, for messages: "processes" or "threads".
    fn members(&self) -> &'static str {
        "processes"
    }
    /// Replaces `values` by their element-wise sum over all ranks (every rank passes the same
    /// length). Fails when another rank has stopped and can no longer take part.
    fn sum(&self, values: &mut [f32]) -> Result<(), ParallelError>;

    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<(), ParallelError> {
        self.sum(&mut [0.0])
    }
}

/// The one process of a run without MPI.
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }

    fn ranks(&self) -> usize {
        1
    }

    fn sum(&self, _values: &mut [f32]) -> Result<(), ParallelError> {
        Ok(())
    }
}

/// Why the ranks of a launch cannot train together.
#[derive(Debug, thiserror::Error)]
pub enum ParallelError {
    #[error(
        "this process is one of {0} started by mpirun or srun, but this pixelcnn was built without the `mpi` feature: rebuild with `cargo build --release --features mpi`"
    )]
    NotBuilt(usize),
    #[error("MPI could not be initialised")]
    Initialise,
    #[error(
        "this process is one of {launched}, but MPI sees {world}: start them with mpirun, or with a launcher wired to this MPI library"
    )]
    Unwired { launched: usize, world: usize },
    #[error(
        "a batch of {batch} images cannot be split evenly across {ranks} {members}: choose a batch size that {ranks} divides"
    )]
    UnevenBatch {
        batch: usize,
        ranks: usize,
        members: &'static str,
    },
    #[error("another training thread stopped at this step")]
    Departed,
    #[error(transparent)]
    NoLogits(#[from] crate::model::NoLogits),
    #[error("cannot start the training threads: {0}")]
    Threads(String),
}

/// The number of processes a launcher (Open MPI's mpirun, a PMI launcher such as MPICH's, or
/// Slurm's srun) says this one belongs to, if any.
fn launched_ranks() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_SIZE",
        "SLURM_STEP_NUM_TASKS",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok()?.parse().ok())
}

/// This process's index among the ranks of a launch on its own machine, as Open MPI, MPICH or
/// Slurm tell it (0 when not launched so): with one GPU per rank, rank r of a machine computes
/// on its GPU r ([`crate::device`]).
pub fn local_rank() -> usize {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok()?.parse().ok())
    .unwrap_or(0)
}

/// The ranks of this launch: MPI's world when started by mpirun or srun with more than one
/// process (with the `mpi` feature), otherwise the [`Single`] process.
pub fn from_environment() -> Result<Box<dyn Collective>, ParallelError> {
    match launched_ranks() {
        Some(ranks) if ranks > 1 => world(ranks),
        _ => Ok(Box::new(Single)),
    }
}

#[cfg(feature = "mpi")]
fn world(ranks: usize) -> Result<Box<dyn Collective>, ParallelError> {
    let world = mpi_world::World::new()?;
    // A launcher that started the processes without wiring MPI leaves each alone in its world.
    if world.ranks() != ranks {
        return Err(ParallelError::Unwired {
            launched: ranks,
            world: world.ranks(),
        });
    }
    Ok(Box::new(world))
}

#[cfg(not(feature = "mpi"))]
fn world(ranks: usize) -> Result<Box<dyn Collective>, ParallelError> {
    Err(ParallelError::NotBuilt(ranks))
}

#[cfg(feature = "mpi")]
mod mpi_world;
mod threads;

pub use threads::{ThreadRank, in_threads};

/// The fewest images in a shard that [`default_shards`] makes.
pub const MIN_SHARD: usize = 8;

/// The shards a run of batches of `batch` images trains in when none are asked for: on the CPU
/// backend, one per thread of the pool, or fewer so that they divide the batch evenly with at
/// least [`MIN_SHARD`] images each; one on a GPU, which runs each operation of the whole batch
/// at once.
pub fn default_shards(batch: usize, device: &Device) -> usize {
    (1..=cpu_threads(device).min(MAX_SHARDS))
        .rev()
        .find(|&shards| batch.is_multiple_of(shards) && batch / shards >= MIN_SHARD)
        .unwrap_or(1)
}

/// Whether `device` is the CPU backend's.
pub fn on_cpu(device: &Device) -> bool {
    matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_))
}

/// The threads of the pool on the CPU backend; 1 on a GPU.
pub fn cpu_threads(device: &Device) -> usize {
    match on_cpu(device) {
        true => rayon::current_num_threads(),
        false => 1,
    }
}

/// The logits `[B, C, K, H, W]` of `levels` `[B, C, H, W]` (given, for a conditional model,
/// `condition` `[B, d]`), computed in `shards` equal parts of the batch side by side, each on
/// its own thread with its share of the pool ([`in_threads`]), as `train --shards` splits a
/// training batch: on the CPU the threads then meet once instead of at each of the forward
/// pass's hundreds of small operations (docs/speed.md). Each
/// image's logits are those of the model's own forward pass on its part of the batch; one
/// shard is that forward pass.
pub fn forward_in_shards(
    model: &PixelCnn,
    levels: Tensor<4, Int>,
    condition: Option<&Tensor<2>>,
    shards: usize,
) -> Result<Tensor<5>, ParallelError> {
    if shards <= 1 {
        return Ok(model.forward_conditioned(levels, condition)?);
    }
    let batch = levels.dims()[0];
    let parts = in_threads(shards, |rank| {
        let range = shard(batch, rank)?;
        let condition = condition.map(|c| c.clone().slice(range.clone()));
        let levels = levels.clone().slice(range);
        Ok(model.forward_conditioned(levels, condition.as_ref())?)
    })?;
    let parts = parts
        .into_iter()
        .collect::<Result<Vec<_>, ParallelError>>()?;
    Ok(Tensor::cat(parts, 0))
}

/// The positions `start..end` in a global batch of `batch` images of `collective`'s shard.
pub fn shard(
    batch: usize,
    collective: &dyn Collective,
) -> Result<std::ops::Range<usize>, ParallelError> {
    let ranks = collective.ranks();
    if !batch.is_multiple_of(ranks) {
        return Err(ParallelError::UnevenBatch {
            batch,
            ranks,
            members: collective.members(),
        });
    }
    let size = batch / ranks;
    let start = collective.rank() * size;
    Ok(start..start + size)
}

/// Averages `grads` over the ranks, with `extra` (summed, not averaged) in the same all-reduce:
/// one buffer of every gradient of `model`, in the order its parameters are visited, then
/// `extra`. Does nothing in a single process.
pub fn average_gradients(
    model: &PixelCnn,
    grads: &mut GradientsParams,
    extra: &mut [f32],
    collective: &dyn Collective,
) -> Result<(), ParallelError> {
    if collective.ranks() == 1 {
        return Ok(());
    }
    let mut flatten = Flatten {
        grads,
        buffer: Vec::new(),
    };
    model.visit(&mut flatten);
    let mut buffer = flatten.buffer;
    let gradients = buffer.len();
    buffer.extend_from_slice(extra);
    collective.sum(&mut buffer)?;
    extra.copy_from_slice(&buffer[gradients..]);
    let scale = 1.0 / collective.ranks() as f32;
    buffer.truncate(gradients);
    buffer.iter_mut().for_each(|g| *g *= scale);
    model.visit(&mut Unflatten {
        grads,
        buffer: &buffer,
        at: 0,
    });
    Ok(())
}

/// Appends each parameter's gradient to one buffer.
struct Flatten<'a> {
    grads: &'a GradientsParams,
    buffer: Vec<f32>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let values = grad.into_data().convert::<f32>();
            self.buffer
                .extend_from_slice(values.as_slice::<f32>().expect("gradients are floats"));
        }
    }
}

/// Puts the averaged gradients back, in the order [`Flatten`] took them.
struct Unflatten<'a, 'b> {
    grads: &'a mut GradientsParams,
    buffer: &'b [f32],
    at: usize,
}

impl ModuleVisitor for Unflatten<'_, '_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let shape = grad.shape();
            let count = shape.num_elements();
            let values = &self.buffer[self.at..self.at + count];
            self.at += count;
            let data = TensorData::new(values.to_vec(), shape);
            self.grads
                .register(param.id, Tensor::<D>::from_data(data, &grad.device()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two ranks simulated in one process: rank `rank` of a world whose other rank contributed
    /// `other`.
    struct Pretend {
        rank: usize,
        other: Vec<f32>,
    }

    impl Collective for Pretend {
        fn rank(&self) -> usize {
            self.rank
        }

        fn ranks(&self) -> usize {
            2
        }

        fn sum(&self, values: &mut [f32]) -> Result<(), ParallelError> {
            values
                .iter_mut()
                .zip(&self.other)
                .for_each(|(v, o)| *v += o);
            Ok(())
        }
    }

    #[test]
    fn a_forward_pass_in_shards_gives_each_image_its_own_logits() {
        use crate::model::{Conditioning, PixelCnnConfig};
        use burn::tensor::Distribution;
        let device = Device::flex();
        let levels =
            Tensor::<4, Int>::random([6, 1, 7, 7], Distribution::Uniform(0.0, 4.0), &device);
        let classes = Conditioning::Class { classes: 3 };
        for conditioning in [Conditioning::None, classes] {
            let config = PixelCnnConfig::new(4)
                .with_layers(3)
                .with_channels(8)
                .with_conditioning(conditioning);
            let model = config.init_seeded(&device, 1);
            let condition = (conditioning == classes)
                .then(|| Tensor::<2>::random([6, 3], Distribution::Default, &device));
            let whole = model
                .forward_conditioned(levels.clone(), condition.as_ref())
                .unwrap();
            for shards in [1, 2, 3] {
                // Twice: the second call runs on the pools the first one built.
                for _ in 0..2 {
                    let parts =
                        forward_in_shards(&model, levels.clone(), condition.as_ref(), shards);
                    parts.unwrap().into_data().assert_approx_eq::<f32>(
                        &whole.to_data(),
                        burn::tensor::Tolerance::absolute(1e-5),
                    );
                }
            }
            let uneven = forward_in_shards(&model, levels.clone(), condition.as_ref(), 4);
            assert!(matches!(uneven, Err(ParallelError::UnevenBatch { .. })));
        }
    }

    #[test]
    fn shards_are_disjoint_cover_the_batch_and_need_an_even_split() {
        let ranks = |rank| Pretend {
            rank,
            other: vec![],
        };
        assert_eq!(shard(32, &ranks(0)).unwrap(), 0..16);
        assert_eq!(shard(32, &ranks(1)).unwrap(), 16..32);
        let error = shard(33, &ranks(0)).err().unwrap().to_string();
        assert!(
            error.contains("33 images cannot be split evenly across 2"),
            "{error}"
        );
        assert_eq!(shard(7, &Single).unwrap(), 0..7);
    }

    #[test]
    fn by_default_a_cpu_run_has_a_shard_per_thread_of_at_least_8_images() {
        let device = Device::flex();
        let in_pool = |threads, batch| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| default_shards(batch, &device))
        };
        assert_eq!(in_pool(2, 32), 2);
        assert_eq!(in_pool(2, 64), 2);
        assert_eq!(in_pool(1, 64), 1);
        assert_eq!(in_pool(2, 12), 1, "6 images a shard are too few");
        assert_eq!(in_pool(3, 32), 2, "3 does not divide 32");
        assert_eq!(in_pool(16, 32), 4, "at least 8 images each");
        assert_eq!(in_pool(3, 7), 1);
    }
}
