"""Optimisers as pure ask/tell generators on the unit cube (the contract: generators.py).

- ibea: IBEA (multi-objective; generational or asynchronous), written here in numpy;
- cmaes: CMA-ES through Hansen's ``cma`` package (the only module that imports it).
"""
