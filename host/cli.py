def main():
    print("neurosplit")
