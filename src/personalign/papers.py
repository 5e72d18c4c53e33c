"""The papers personalign implements, as BibTeX: cited by model and dataset cards and by the trainers' own TRL cards."""

ALIGNX_CITATION = """@article{li2025alignx,
  title   = {From 1,000,000 Users to Every User: Scaling Up Personalized Preference for User-level Alignment},
  author  = {Li, Jia-Nan and Guan, Jian and Wu, Songhao and Wu, Wei and Yan, Rui},
  journal = {arXiv preprint arXiv:2503.15463},
  year    = {2025}
}"""
COUNTERFACTUAL_CITATION = """@article{jin2025counterfactual,
  title  = {In-Context Personalized Alignment with Feedback History under Counterfactual Evaluation},
  author = {Jin, Xisen and Li, Zheng and Dai, Zhenwei and Liu, Hui and Tang, Xianfeng and Luo, Chen and
            Goutam, Rahul and Ren, Xiang and He, Qi},
  year   = {2025}
}"""
MULTIFACETED_CITATION = """@article{lee2024janus,
  title   = {Aligning to Thousands of Preferences via System Message Generalization},
  author  = {Lee, Seongyun and Park, Sue Hyun and Kim, Seungone and Seo, Minjoon},
  journal = {arXiv preprint arXiv:2405.17977},
  year    = {2024}
}"""

DPORE_CITATION = """@misc{dpore2025,
  title  = {Context-Aware Alignment: Adapting Large Language Models to Individual Historical Data},
  author = {Anonymous},
  note   = {Under double-blind review},
  year   = {2025}
}"""
