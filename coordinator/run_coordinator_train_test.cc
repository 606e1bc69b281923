// Tests of the training phases and the commit: training steps (a non-finite loss), checkpoint
// reports counted per registration, relaunches during a commit, and ranks that stop.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/coordinator_test_util.h"

namespace srlm::coordinator {
namespace {

// One NaN loss used to end the coordinator: SQLite stores NaN as NULL, the insert into
// train_steps (loss NOT NULL) failed, and a failed commit aborts. It is refused and changes nothing.
TEST_F(CoordinatorServiceTest, ANonFiniteLossMovesTheStepOnAndIsNotStored) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  ASSERT_TRUE(Lease(w0).has_train());
  v1::ReportTrainStepRequest step;
  step.set_worker_id(w0);
  step.set_iteration(0);
  step.set_step(1);
  step.set_total_steps(10);
  step.set_loss(0.75);
  ASSERT_TRUE(client_->ReportTrainStep(step).ok());
  // Steps every rank skipped for a non-finite gradient: the step moves on, the loss shown stays the
  // last finite one, and nothing reaches the database (a NaN there failed the commit and ended the
  // coordinator).
  int64_t n = 1;
  for (double loss : {std::nan(""), double{INFINITY}, -double{INFINITY}}) {
    step.set_step(++n);
    step.set_loss(loss);
    (*step.mutable_metrics())["skipped"] = 1;
    auto accepted = client_->ReportTrainStep(step);
    ASSERT_TRUE(accepted.ok()) << loss << ": " << accepted.status();
    auto status = client_->GetStatus();
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(status->train_step(), n);
    EXPECT_DOUBLE_EQ(status->train_loss(), 0.75);
  }
  step.set_step(++n);
  step.set_loss(0.5);
  (*step.mutable_metrics())["grad_norm"] = INFINITY;  // stored as text: no harm
  ASSERT_TRUE(client_->ReportTrainStep(step).ok());
  auto status = client_->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->train_step(), n);
  EXPECT_DOUBLE_EQ(status->train_loss(), 0.5);
  Stop();
  Start(std::nullopt);
  EXPECT_EQ(client_->GetStatus()->train_step(), n);
  EXPECT_DOUBLE_EQ(client_->GetStatus()->train_loss(), 0.5);
}

// A checkpoint report counts for the rank its worker registered as, and only from that rank's
// current registration: rank 1 of 2 reporting as rank 0 of 1 committed the iteration at once.
TEST_F(CoordinatorServiceTest, ACheckpointReportCountsOnlyForItsWorkersRegistration) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  for (auto [rank, world_size] : {std::pair{0, 1}, std::pair{0, 2}, std::pair{1, 3}}) {
    auto refused = Checkpoint(w1, rank, world_size, 0, "/ckpt/m1");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << rank << "/" << world_size;
    EXPECT_THAT(std::string(refused.status().message()),
                ::testing::HasSubstr(absl::StrCat("registered as rank 1 of 2")));
  }
  auto status = client_->GetStatus();
  EXPECT_EQ(status->iteration(), 0);
  EXPECT_EQ(status->phase(), v1::PHASE_SFT);
  EXPECT_EQ(status->ranks_reported(), 0);
  // Rank 1 relaunched: the old registration's report no longer counts; the new one's does.
  const std::string r1 = Register(1, 2);
  auto superseded = Checkpoint(w1, 1, 2, 0, "/ckpt/m1");
  EXPECT_EQ(superseded.status().code(), absl::StatusCode::kFailedPrecondition) << superseded.status();
  EXPECT_EQ(client_->GetStatus()->ranks_reported(), 0);
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 0, "/ckpt/m1").ok());
  auto committed = Checkpoint(r1, 1, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_TRUE(committed->committed());
}

// The whole job died after rank 0 reported the SFT checkpoint and before rank 1 did (rank 1 was
// still evaluating it), and the coordinator restarted too. Relaunched, rank 1 used to get a plain
// training lease and enter the collective alone, while rank 0 waited as "reported": the job hung.
// Now rank 1 is told the checkpoint is written, reports it with its evaluation, and the run goes on.
TEST_F(CoordinatorServiceTest, ARelaunchAfterAHalfReportedCheckpointReportsInsteadOfTraining) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  ASSERT_TRUE(Lease(w0).has_train());
  ASSERT_TRUE(Lease(w1).has_train());
  v1::ReportCheckpointRequest report;
  report.set_worker_id(w0);
  report.set_rank(0);
  report.set_world_size(2);
  report.set_iteration(0);
  report.set_checkpoint_dir("/ckpt/m1");
  report.set_eval_correct(3);
  report.set_eval_total(5);
  ASSERT_TRUE(client_->ReportCheckpoint(report).ok());
  Stop();
  Start(std::nullopt);
  const std::string r0 = Register(0, 2), r1 = Register(1, 2);
  EXPECT_TRUE(Lease(r0).has_wait());  // rank 0's report survived the restart
  v1::LeaseShardResponse lease = Lease(r1);
  ASSERT_TRUE(lease.has_train()) << lease.DebugString();
  EXPECT_EQ(lease.train().written_checkpoint_dir(), "/ckpt/m1");
  report.set_worker_id(r1);
  report.set_rank(1);
  report.set_eval_correct(4);
  auto committed = client_->ReportCheckpoint(report);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_TRUE(committed->committed());
  EXPECT_EQ(committed->phase(), v1::PHASE_PROMPTS);
  auto status = client_->GetStatus();
  ASSERT_EQ(status->committed_iterations_size(), 1);
  EXPECT_EQ(status->committed_iterations(0).eval_correct(), 7);  // both ranks' shares
  EXPECT_EQ(status->committed_iterations(0).eval_total(), 10);
}

// Ranks of another world size cannot finish a half-reported commit: a smaller launch would wait for
// ever (the reported ranks only wait), so registration refuses it and names the launch needed.
TEST_F(CoordinatorServiceTest, ARelaunchWithAnotherRankCountDuringACommitIsRefusedAtRegistration) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  ASSERT_TRUE(Lease(w0).has_train());
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 0, "/ckpt/m1").ok());
  Stop();
  Start(std::nullopt);
  for (int world_size : {1, 3}) {
    v1::RegisterWorkerRequest request;
    request.set_rank(0);
    request.set_world_size(world_size);
    auto refused = client_->RegisterWorker(request);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << world_size;
    EXPECT_THAT(std::string(refused.status().message()),
                ::testing::HasSubstr(absl::StrCat("iteration 0 is being committed: 1 of 2 ranks reported checkpoint "
                                                  "/ckpt/m1 before the job ended; relaunch with 2 ranks (this launch has ",
                                                  world_size, ")")));
  }
  const std::string r0 = Register(0, 2), r1 = Register(1, 2);  // the right launch goes on
  EXPECT_TRUE(Lease(r0).has_wait());
  EXPECT_EQ(Lease(r1).train().written_checkpoint_dir(), "/ckpt/m1");
  auto committed = Checkpoint(r1, 1, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_TRUE(committed->committed());
  EXPECT_TRUE(Register(0, 1).size() > 0);  // after the commit any rank count may go on
}

// Stopping is one decision for a launch: a rank that leaves before training starts keeps the others
// from starting it (they are told to leave too), and a rank that stops while others already train
// is told to end the whole job rather than leave them waiting in a collective. A relaunch clears it.
TEST_F(CoordinatorServiceTest, AStoppingRankLeavesAndNoOtherRankOfItsLaunchStartsTraining) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);  // the run starts in SFT
  const v1::LeaseShardResponse left = Lease(w1, /*stopping=*/true);
  ASSERT_TRUE(left.has_stop()) << left.DebugString();
  EXPECT_FALSE(left.stop().end_job());  // nobody trains yet
  const v1::LeaseShardResponse told = Lease(w0);
  ASSERT_TRUE(told.has_stop()) << told.DebugString();
  EXPECT_THAT(told.stop().reason(), ::testing::HasSubstr("rank 1 of this launch has stopped"));
  EXPECT_FALSE(told.stop().end_job());

  // The relaunch registers both ranks again: training is handed out; then rank 1 stops while rank 0
  // trains, and is told to end the job.
  const std::string again0 = Register(0, 2), again1 = Register(1, 2);
  ASSERT_TRUE(Lease(again0).has_train());
  const v1::LeaseShardResponse late = Lease(again1, /*stopping=*/true);
  ASSERT_TRUE(late.has_stop()) << late.DebugString();
  EXPECT_TRUE(late.stop().end_job());
  EXPECT_EQ(client_->GetStatus()->phase(), v1::PHASE_SFT);  // leaving changes no state
}

// After a restart in a training phase, the ranks registered before it may be training without
// having asked this process: a rank that stops then ends the job rather than leave them waiting.
TEST_F(CoordinatorServiceTest, AfterARestartInTrainingAStoppingRankEndsTheJob) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  Stop();
  Start(SmallConfig());
  const v1::LeaseShardResponse stop = Lease(w0, /*stopping=*/true);
  ASSERT_TRUE(stop.has_stop()) << stop.DebugString();
  EXPECT_TRUE(stop.stop().end_job());  // w1 may be training
}

// A departure is durable: after a coordinator restart, the other rank of the departed rank's launch
// is still told to stop instead of being handed training it would wait in for the departed rank.
TEST_F(CoordinatorServiceTest, ADepartureOutlivesACoordinatorRestart) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);  // the run starts in SFT
  ASSERT_TRUE(Lease(w1, /*stopping=*/true).has_stop());
  Stop();
  Start(SmallConfig());
  const v1::LeaseShardResponse told = Lease(w0);
  ASSERT_TRUE(told.has_stop()) << told.DebugString();
  EXPECT_THAT(told.stop().reason(), ::testing::HasSubstr("rank 1 of this launch has stopped"));
  // A relaunch registers rank 1 again, and training is handed out.
  const std::string again0 = Register(0, 2);
  Register(1, 2);
  EXPECT_TRUE(Lease(again0).has_train());
}

}  // namespace
}  // namespace srlm::coordinator
