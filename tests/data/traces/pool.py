import multiprocessing as mp
import threading


def work(n):
    buf = bytearray(n * 4096)
    for i in range(0, len(buf), 4096):
        buf[i] = 1
    return sum(buf)


if __name__ == "__main__":
    mp.set_start_method("fork")
    data = [bytearray(1 << 20) for _ in range(8)]
    with mp.Pool(4) as p:
        print(sum(p.map(work, range(1, 200))))
    ts = [threading.Thread(target=work, args=(300,)) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
