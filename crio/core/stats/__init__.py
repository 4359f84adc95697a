"""Resource usage of containers and pods: cgroup and network readers, the sampler, cadvisor metrics."""
