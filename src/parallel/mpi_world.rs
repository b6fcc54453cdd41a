//! The ranks of an MPI launch (`mpirun`, or srun with an MPI library wired to Slurm).

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;

use super::{Collective, ParallelError};

/// MPI's world communicator; MPI is finalised when it is dropped.
pub struct World {
    _universe: Universe,
    world: SimpleCommunicator,
}

impl World {
    pub fn new() -> Result<Self, ParallelError> {
        let universe = mpi::initialize().ok_or(ParallelError::Initialise)?;
        let world = universe.world();
        Ok(Self {
            _universe: universe,
            world,
        })
    }
}

impl Collective for World {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn ranks(&self) -> usize {
        self.world.size() as usize
    }

    fn sum(&self, values: &mut [f32]) -> Result<(), ParallelError> {
        let mine = values.to_vec();
        self.world
            .all_reduce_into(&mine[..], values, SystemOperation::sum());
        Ok(())
    }
}
