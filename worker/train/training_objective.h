// What a Trainer optimises: the masked cross-entropy of SFT or a DPO loss. Its own header so that
// the training commands' declarations do not pull in libtorch.
#pragma once

namespace srlm {

enum class TrainingObjective { kSft, kDpo };

}  // namespace srlm
