// A small MPI program for the Slurm harness test: every rank prints its rank, the world size and the
// all-reduced sum of (rank + 1), so the test can check that srun --mpi=pmix wired the ranks together.
#include <mpi.h>

#include <cstdio>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int mine = rank + 1, sum = 0;
  MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  std::printf("probe rank=%d size=%d sum=%d\n", rank, size, sum);
  MPI_Finalize();
  return 0;
}
