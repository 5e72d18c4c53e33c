"""The counterfactual paper (In-Context Personalized Alignment with Feedback History under Counterfactual
Evaluation) in one place: everything between a row with a feedback history and a filtered training set.

- `feedback`: rows with a feedback history; the reward model's input (Appendix B.2 / B.3 format, oldest pairs
  dropped to fit), the rendering settings saved beside a model, and in-context personalized generation (B.2);
- `modeling`: loading a trained personalized reward model and scoring both responses of every row;
- `evaluation`: its accuracy with and without the history (Table 1), and the generative B.1 judge baseline;
- `rejection_sampling`: keeping the top share of training pairs by reward margin (§4.3) as RS-SFT / RS-DPO data.

The trainer and its config follow TRL's layout (`personalign.trainers.reward_trainer`, `reward_config`) and import
from here; nothing here imports `personalign.trainers`, and no module imports torch at its top.
"""
