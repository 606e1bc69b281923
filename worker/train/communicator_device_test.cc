// The communicator that training uses on the test device (SRLM_TEST_DEVICE: MPI on the CPU, NCCL
// on "cuda"; bench/gpu/run_checks.sh sets it on a GPU machine), in this one process: world size 1.
// All-reduce and broadcast of device tensors, host sums, and the gradient synchronizer's bucket
// path (flatten, all-reduce, scale, copy back), which a real world size of 1 would skip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "worker/model/model_test_util.h"
#include "worker/train/communicator.h"
#include "worker/train/grad_sync.h"

namespace srlm {
namespace {

using testing_util::TestDevice;

std::unique_ptr<Communicator> DeviceCommunicator() {
  const torch::Device device = TestDevice();
  auto comm = device.is_cuda() ? MakeNcclCommunicator(device.has_index() ? device.index() : 0) : MakeMpiCommunicator();
  EXPECT_TRUE(comm.ok()) << comm.status();
  return comm.ok() ? std::move(*comm) : nullptr;
}

// Reports a world of two ranks, so that GradientSynchronizer takes its bucket path, and passes
// every collective to the real communicator (whose world is this process alone).
class TwoRankView : public Communicator {
 public:
  explicit TwoRankView(Communicator* real) : real_(real) {}
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  int local_rank() const override { return 0; }
  std::string backend_name() const override { return real_->backend_name(); }
  absl::Status AllReduceSum(at::Tensor& t) override { return real_->AllReduceSum(t); }
  absl::Status Broadcast(at::Tensor& t, int root) override { return real_->Broadcast(t, root); }
  absl::Status AllReduceSumHost(std::vector<double>* v) override { return real_->AllReduceSumHost(v); }
  absl::Status AllReduceMaxHost(std::vector<double>* v) override { return real_->AllReduceMaxHost(v); }
  absl::Status Barrier() override { return real_->Barrier(); }

 private:
  Communicator* real_;
};

TEST(CommunicatorOnTestDevice, CollectivesOfOneRank) {
  auto comm = DeviceCommunicator();
  ASSERT_NE(comm, nullptr);
  EXPECT_EQ(comm->backend_name(), TestDevice().is_cuda() ? "nccl" : "mpi");
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->local_rank(), 0);
  // A 25 MB bucket's worth of random values: an all-reduce over one rank leaves them as they are.
  torch::Tensor values = torch::randn({25 << 18}, torch::TensorOptions().device(TestDevice()));
  torch::Tensor before = values.clone();
  ASSERT_TRUE(comm->AllReduceSum(values).ok());
  EXPECT_TRUE(torch::equal(values.cpu(), before.cpu()));
  ASSERT_TRUE(comm->Broadcast(values, 0).ok());
  EXPECT_TRUE(torch::equal(values.cpu(), before.cpu()));
  std::vector<double> host = {1.5, -2.0};
  ASSERT_TRUE(comm->AllReduceSumHost(&host).ok());
  EXPECT_EQ(host, (std::vector<double>{1.5, -2.0}));
  ASSERT_TRUE(comm->AllReduceMaxHost(&host).ok());
  EXPECT_TRUE(comm->Barrier().ok());
  // A tensor the backend cannot reduce in place (not contiguous) is refused with a message.
  torch::Tensor strided = torch::ones({4, 4}, torch::TensorOptions().device(TestDevice())).t();
  EXPECT_FALSE(comm->AllReduceSum(strided).ok());
}

TEST(CommunicatorOnTestDevice, GradientBucketsMatchTheSingleProcessPath) {
  auto real = DeviceCommunicator();
  ASSERT_NE(real, nullptr);
  TwoRankView two(real.get());
  auto single = MakeSingleProcessCommunicator();
  const auto on = torch::TensorOptions().device(TestDevice());
  auto make_params = [&] {
    return std::vector<torch::Tensor>{torch::zeros({300}, on), torch::zeros({17, 33}, on),
                                      torch::zeros({5}, on).to(torch::kBFloat16), torch::zeros({64}, on)};
  };
  std::vector<torch::Tensor> bucketed = make_params(), reference = make_params();
  GradientSynchronizer through_buckets(bucketed, &two, /*bucket_bytes=*/1024);
  GradientSynchronizer alone(reference, single.get());
  ASSERT_GE(through_buckets.num_buckets(), 3);
  torch::manual_seed(3);
  for (size_t i = 0; i + 1 < bucketed.size(); ++i) {  // the last parameter gets no gradient
    torch::Tensor g = torch::randn(bucketed[i].sizes()).to(on).to(bucketed[i].scalar_type());
    bucketed[i].mutable_grad() = g.clone();
    reference[i].mutable_grad() = g.clone();
  }
  std::vector<double> sums = {4.0};
  auto r = through_buckets.Synchronize(3.0, &sums);
  ASSERT_TRUE(r.ok()) << r.status();
  auto expected = alone.Synchronize(3.0);
  ASSERT_TRUE(expected.ok());
  EXPECT_FALSE(r->skipped);
  EXPECT_EQ(r->global_weight, 3.0);
  EXPECT_EQ(sums[0], 4.0);
  for (size_t i = 0; i < bucketed.size(); ++i) {
    ASSERT_TRUE(bucketed[i].grad().defined()) << i;
    EXPECT_EQ(bucketed[i].grad().device(), bucketed[i].device()) << i;  // "cuda" names no index: cuda:0
    // bfloat16: the buckets scale in float32 and round once, the single path scales in bfloat16.
    const double rtol = bucketed[i].scalar_type() == torch::kBFloat16 ? 1.0 / 128 : 1e-6;
    EXPECT_TRUE(torch::allclose(bucketed[i].grad().cpu().to(torch::kFloat32), reference[i].grad().cpu().to(torch::kFloat32),
                                rtol, 1e-7))
        << "parameter " << i;
  }
  // A non-finite gradient is found in the flattened buckets: the step is skipped, gradients zeroed.
  bucketed[1].mutable_grad()[2][5] = std::numeric_limits<float>::quiet_NaN();
  r = through_buckets.Synchronize(3.0);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->skipped);
  EXPECT_EQ(bucketed[0].grad().abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace srlm
